"""Bad (and odd but valid) inputs a new user hits in the first hour, as one table (issue 15).

Each row runs a real entry point as a subprocess, the way ``make`` does, and checks its exit code, a fragment of
what it printed, that no Python traceback reached the user and, for a failed command, that it left no run behind.

To add a row: give it a unique name, the command (module and ``key=value`` arguments; ``{d}`` is the row's
temporary directory, ``{model}`` a small random-weight judge), the files it needs (name -> text) and what must come
back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pairs_jsonl(n: int = 3, **overrides) -> str:
    """``n`` labelled JudgeLM-format pairs; ``overrides`` change fields of the first one."""
    rows = [{"question_id": i, "question_body": f"What is {i}+{i}?", "answer1_body": str(2 * i),
             "answer2_body": str(2 * i + 1), "label": 1} for i in range(n)]
    rows[0].update(overrides)
    return "".join(json.dumps(r) + "\n" for r in rows)


MAPPING = "path: plain.jsonl\nquestion: prompt\nanswer1: response 1\nanswer2: response 2\n"
PLAIN = json.dumps({"prompt": "Say hi", "response 1": "hi", "response 2": "", "label": 0}) + "\n"
JUDGE = ("launch.judge", "cluster=local", "runs_dir={d}/runs", "model.path={model}", "shards=1", "run=r")
IMPORT = ("launch.import_verdicts", "data={d}/pairs.jsonl", "runs_dir={d}/runs", "run=imp")
PROMPTS = ("launch.prompts", "model.path={model}")


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]  # module, then its arguments
    rc: int  # expected exit code
    fragment: str  # must appear in stdout or stderr
    files: dict[str, str | bytes] = field(default_factory=dict)
    leaves: tuple[str, ...] = ()  # paths (under {d}) that must not exist afterwards: a failure leaves nothing


CASES = [
    # --- data given to `make judge` -------------------------------------------------------------------------
    Case("data is a directory", (*JUDGE, "data.source={d}"), 2, "is a directory, not a data file"),
    Case("data file missing", (*JUDGE, "data.source={d}/nope.jsonl"), 2, "is neither a benchmark"),
    Case("plain JSONL without question_id", (*JUDGE, "data.source={d}/plain.jsonl"), 2,
         "field 'question_id': missing; not a JudgeLM-format file? describe its fields in a mapping file and use "
         "DATA=generic:mapping.yaml", {"plain.jsonl": PLAIN}),
    Case("YAML syntax error in a mapping", (*JUDGE, "data.source=generic:{d}/m.yaml"), 2,
         "m.yaml:3: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence at line 2)",
         {"m.yaml": "path: plain.jsonl\nquestion: [prompt\n", "plain.jsonl": PLAIN}),
    Case("unquoted boolean label_values key", (*JUDGE, "data.source=generic:{d}/m.yaml"), 2,
         "label_values: key True is read by YAML as a bool, not as text; quote it",
         {"m.yaml": MAPPING + "label: label\nlabel_values: {yes: 1, no: -1}\n", "plain.jsonl": PLAIN}),
    Case("data.limit=-1", (*JUDGE, "data.source={d}/pairs.jsonl", "data.limit=-1"), 2,
         "data.limit=-1: give how many records to judge", {"pairs.jsonl": pairs_jsonl()}),
    Case("multi-answer grading of labelled pairs", (*JUDGE, "data.source={d}/pairs.jsonl", "prompt.mode=multi"), 2,
         "prompt.mode=multi: 3 records are labelled pairs", {"pairs.jsonl": pairs_jsonl()}),
    Case("lone surrogate escape in a record", (*JUDGE, "data.source={d}/pairs.jsonl"), 2,
         "pairs.jsonl:2: field 'question_body': holds a lone UTF-16 surrogate \\ud800 at character 4",
         {"pairs.jsonl": pairs_jsonl(1) + pairs_jsonl(1, question_body="bad \ud800 here")}, leaves=("runs/r",)),
    Case("lone surrogate in a nested field of a JSON list", (*PROMPTS, "data.source={d}/pairs.json"), 2,
         "pairs.json[item 0]: field 'reference.text': holds a lone UTF-16 surrogate \\udfff",
         {"pairs.json": json.dumps([{"question_id": 0, "question_body": "q", "answer1_body": "a",
                                     "answer2_body": "b", "reference": {"text": "x\udfff"}}])}),
    # --- odd but valid data: accepted, rendered as JudgeLM renders it (`make prompts`) ---------------------
    Case("escaped surrogate pair (an emoji) in a JSON list", (*PROMPTS, "data.source={d}/pairs.json"), 0,
         "[Question]\\nsmile \U0001F600 0",  # the pair is one character; only a lone half is an error
         {"pairs.json": json.dumps([{"question_id": 0, "question_body": "smile \U0001F600 0", "answer1_body": "a",
                                     "answer2_body": "b"}])}),
    Case("UTF-8 byte-order mark", (*PROMPTS, "data.source={d}/bom.jsonl"), 0, '"question_id": 0',
         {"bom.jsonl": b"\xef\xbb\xbf" + pairs_jsonl().encode()}),
    Case("empty answer", (*PROMPTS, "data.source={d}/pairs.jsonl"), 0,
         "[The Start of Assistant 2's Answer]\\n\\n\\n[The End of Assistant 2's Answer]",
         {"pairs.jsonl": pairs_jsonl(answer2_body="")}),
    Case("whitespace-only answer and reference", (*PROMPTS, "data.source={d}/pairs.jsonl"), 0,
         "[The Start of Assistant 1's Answer]\\n  \\n\\n[The End",  # a blank reference is no reference block
         {"pairs.jsonl": pairs_jsonl(answer1_body="  ", reference=" \n")}),
    Case("generic data without ids or labels", (*PROMPTS, "data.source=generic:{d}/m.yaml"), 0, '"question_id": 1',
         {"m.yaml": MAPPING, "plain.jsonl": PLAIN}),
    Case("make prompts on a bad record", (*PROMPTS, "data.source={d}/pairs.jsonl"), 2,
         "pairs.jsonl:1: field 'question_body': empty", {"pairs.jsonl": pairs_jsonl(question_body=" ")}),
    # --- `make import` -------------------------------------------------------------------------------------
    Case("verdict for an id not in the data", (*IMPORT, "format=judgelm", "verdicts={d}/v.jsonl"), 2,
         "v.jsonl:1: field 'question_id': '99' is not the id of a record of the data",
         {"pairs.jsonl": pairs_jsonl(), "v.jsonl": '{"question_id": 99, "pred_text": "1 2"}\n'},
         ),
    Case("verdict value not in the mapping",
         (*IMPORT, "format=generic", "verdicts={d}/v.jsonl", "generic.id=question_id", "generic.winner=w",
          "generic.winner_values={A: 1, B: -1}"), 2, "v.jsonl:1: field 'w': value 'C' is not in winner_values",
         {"pairs.jsonl": pairs_jsonl(), "v.jsonl": '{"question_id": 0, "w": "C"}\n'}),
    Case("two verdicts for one id", (*IMPORT, "format=judgelm", "verdicts={d}/v.jsonl"), 2,
         "v.jsonl:2: field 'question_id': second verdict for '0'",
         {"pairs.jsonl": pairs_jsonl(), "v.jsonl": '{"question_id": 0, "pred_text": "1 2"}\n' * 2},
         ),
    Case("verdict file missing", (*IMPORT, "format=judgelm", "verdicts={d}/nope.jsonl"), 2,
         "verdict file not found", {"pairs.jsonl": pairs_jsonl()}),
    Case("documented {A:1,B:-1,tie:0} mapping",
         (*IMPORT, "format=generic", "verdicts={d}/v.jsonl", "generic.id=question_id", "generic.winner=w",
          "generic.winner_values={A:1,B:-1,tie:0}"), 0, "imported 1 records",
         {"pairs.jsonl": pairs_jsonl(), "v.jsonl": '{"question_id": 0, "w": "tie"}\n'}),
    Case("import of verdicts that fail", (*IMPORT, "format=judgelm", "verdicts={d}/v.jsonl"), 2,
         "field 'pred_text'", {"pairs.jsonl": pairs_jsonl(), "v.jsonl": '{"question_id": 0}\n'},
         leaves=("runs/imp",)),
    Case("import with skip_invalid", (*IMPORT, "format=judgelm", "verdicts={d}/v.jsonl", "skip_invalid=true"), 0,
         "imported 1 records",
         {"pairs.jsonl": pairs_jsonl(), "v.jsonl": '{"question_id": 0, "pred_text": "1 2"}\n{oops\n'},
         ),
]


LAUNCHER = [
    # --- settings and names on any entry point ---------------------------------------------------------------
    Case("unknown setting", (*JUDGE, "engine.foo=1"), 2, "unknown setting 'engine.foo'"),
    Case("wrong type, key named", (*JUDGE, "shards=abc"), 2, "shards: Value 'abc'"),
    Case("not a bool, key named", (*JUDGE, "data.skip_invalid=maybe"), 2, "data.skip_invalid: Value 'maybe'"),
    Case("unknown cluster profile", (*JUDGE, "cluster=bogus"), 2, "no cluster config 'bogus' (choices: a100,"),
    Case("run name with a space", ("launch.judge", "run=my run"), 2, "run name 'my run' is not allowed"),
    Case("run name escaping runs/", ("launch.judge", "run=../escape"), 2, "run name '../escape' is not allowed",
         leaves=("escape",)),
    Case("run name with a separator", ("launch.judge", "run=a/b"), 2, "run name 'a/b' is not allowed"),
    Case("--help on an entry point", ("launch.resubmit", "--help"), 0, "runs_dir=runs                        Where"),
    Case("--help lists nested settings", ("launch.judge", "--help"), 0, "engine.temperature=0.0"),
    Case("not a key=value", ("launch.status", "myrun"), 2, "'myrun' is not of the form key=value"),
    # --- the judge model, checked before anything is submitted ---------------------------------------------
    Case("model directory missing", (*JUDGE[:3], "model.path={d}/nope", "data.source={d}/pairs.jsonl"), 2,
         "model.path=", {"pairs.jsonl": pairs_jsonl()}, leaves=("runs/r",)),
    Case("model config corrupt", (*JUDGE[:3], "model.path={d}/m", "data.source={d}/pairs.jsonl"), 2,
         "cannot load its config", {"pairs.jsonl": pairs_jsonl(), "m/config.json": "{not json"}, leaves=("runs/r",)),
    # --- runs that are not there ---------------------------------------------------------------------------
    Case("report on a missing run", ("launch.report", "runs=[missing]", "runs_dir={d}"), 2, "no run missing in"),
    Case("resubmit of a missing run", ("launch.resubmit", "run=missing", "runs_dir={d}"), 2, "no run missing in"),
    Case("status of '..'", ("launch.status", "run=..", "runs_dir={d}/runs"), 2, "run name '..' is not allowed"),
    Case("resubmit may only change where a run runs", ("launch.resubmit", "run=x", "runs_dir={d}", "shards=3"), 2,
         "no run x in"),
]
CASES += LAUNCHER


def run_case(case: Case, d: Path, model: Path) -> subprocess.CompletedProcess:
    for name, content in case.files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    module, *args = (a.replace("{d}", str(d)).replace("{model}", str(model)) for a in case.argv)
    # Offline: a model path that is not a directory must fail at once, not after retrying the Hub.
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=d, env=env, capture_output=True, text=True,
                           timeout=300)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_bad_input(case: Case, tmp_path, random_judge):
    out = run_case(case, tmp_path, random_judge)
    said = out.stdout + out.stderr
    assert "Traceback (most recent call last)" not in said, said[-3000:]
    assert out.returncode == case.rc, said[-3000:]
    assert case.fragment in said, said[-3000:]
    for path in case.leaves:
        assert not (tmp_path / path).exists(), f"{path} left behind"


def test_row_names_are_unique():
    assert len({c.name for c in CASES}) == len(CASES)
