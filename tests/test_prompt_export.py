"""``make prompts`` (``launch.prompts``): every profile's prompts for every unit, checked against golden files.

The golden files in ``tests/golden/prompt_export/<profile>/<mode>.jsonl`` are ``make prompts`` output for one record
(``two_answers.jsonl``; ``three_answers.jsonl`` for multi-answer grading), and ``<mode>_2turns.jsonl`` for a
two-turn conversation (``two_turns.jsonl``) where the profile judges conversations, with the shipped tiny judge's
tokenizer, which has no chat template. The profiles' texts themselves are checked against their authors' templates
in ``test_profiles.py``; these files pin what the export makes of them: units, turns, orders, reference modes, parts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from judgelm.data.records import load_records
from judgelm.inference.encode import chat_text
from judgelm.inference.prepare import prepare_chunk
from judgelm.judging.run import create_run, plan_run
from judgelm.judging.store import VerdictStore
from judgelm.profiles import PROFILES, make_profile
from judgelm.profiles.prompts import Mode, build_prompt
from launch.configs import load_judge_config
from launch.prompts import main
from tests.conftest import write_pairs

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "prompt_export"
TINY_JUDGE = REPO / "models" / "tiny-judge"
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def cases():
    """(profile, mode, golden file stem, input file) for every registered profile and mode, and the conversation
    form of every profile that judges conversations: a profile added without its golden files fails below."""
    for name, cls in PROFILES.items():
        for mode in cls.modes:
            multi = mode is Mode.MULTI
            yield name, mode.value, mode.value, "three_answers.jsonl" if multi else "two_answers.jsonl"
            if cls.max_turns > 1 and not multi:
                yield name, mode.value, f"{mode.value}_2turns", "two_turns.jsonl"


def export(tmp_path: Path, *args: str) -> list[dict]:
    out = tmp_path / "prompts.jsonl"
    assert main([*args, f"out={out}"]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def templated_judge(tmp_path, random_judge) -> Path:
    """The random judge with a chat template, so chat profiles really go through one."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(random_judge)
    tok.chat_template = TEMPLATE
    shutil.copytree(random_judge, tmp_path / "judge")
    tok.save_pretrained(tmp_path / "judge")
    return tmp_path / "judge"


@pytest.mark.parametrize("profile, mode, stem, data", [pytest.param(*c, id=f"{c[0]}/{c[2]}") for c in cases()])
def test_every_profile_and_mode_renders_its_golden_file(tmp_path, profile, mode, stem, data):
    golden = GOLDEN / profile / f"{stem}.jsonl"
    rel = golden.relative_to(REPO)
    if not golden.is_file():
        pytest.fail(f"profile {profile!r} ({mode}, {data}) has no golden file {rel}: create it with\n  make prompts "
                    f"DATA={(GOLDEN / data).relative_to(REPO)} ARGS=\"judge.profile={profile} prompt.mode={mode} "
                    f"out={rel}\"\nand check its text against the profile authors' template")
    rows = export(tmp_path, f"data.source={GOLDEN / data}", f"model.path={TINY_JUDGE}", f"judge.profile={profile}",
                  f"prompt.mode={mode}")
    assert rows == [json.loads(line) for line in golden.read_text(encoding="utf-8").splitlines()]


def test_units_are_those_of_the_run_record_by_record(tmp_path):
    """Both orders and both reference modes by default, as ``make judge`` judges them; JudgeLM's text exactly."""
    data = write_pairs(tmp_path / "d.jsonl", 5, with_reference_every=2)
    rows = export(tmp_path, f"data.source={data}", f"model.path={TINY_JUDGE}")
    records = load_records(data).records
    assert [(r["question_id"], r["reference"], r["order"]) for r in rows] == [
        (rec.question_id, ref, order) for rec in records
        for ref in ((False, True) if rec.reference is not None else (False,)) for order in (0, 1)]
    for row in rows:
        rec = records[row["question_id"]]
        answers = list(rec.answers)[::-1] if row["order"] else list(rec.answers)
        expected = build_prompt(rec.question, answers, rec.reference if row["reference"] else None, Mode.PAIR)
        assert row["prompt"] == row["user"] == expected and row["system"] is None and not row["chat"]
        assert row["turn"] == 1
    only = export(tmp_path, f"data.source={data}", f"model.path={TINY_JUDGE}", "prompt.orders=original",
                  "prompt.reference=without", "data.limit=3")
    assert [(r["question_id"], r["order"], r["reference"]) for r in only] == [(0, 0, False), (1, 0, False),
                                                                              (2, 0, False)]


@pytest.mark.parametrize("profile", ["judgelm", "mtbench-gpt4"])
def test_the_listing_is_what_the_shards_render(tmp_path, templated_judge, profile):
    """Every unit of a real run, rendered by the shards' own path (``prepare_chunk`` over the store), is the listed
    prompt: a conversation's turns, both orders, both reference modes, through the judge's chat template."""
    from judgelm.inference.models import load_tokenizer

    args = [f"data.source={GOLDEN / 'two_turns.jsonl'}", f"model.path={templated_judge}", f"judge.profile={profile}",
            f"runs_dir={tmp_path / 'runs'}", "run=r", "shards=1", "store.chunk_units=3"]
    rows = export(tmp_path, *args[:3])
    cfg = load_judge_config(args)
    store = VerdictStore(create_run(plan_run(cfg), "{}\n").store)
    tokenizer = load_tokenizer(str(templated_judge))
    rendered = {}
    for chunk in range(store.n_chunks):
        inputs = store.chunk_inputs(chunk)
        prep = prepare_chunk(inputs, tokenizer, Mode.PAIR, 4096, "truncate", make_profile(cfg.judge))
        for k, prompt in enumerate(prep.prompts):
            turn = 1 + (int(inputs["turn"][k]) if inputs["turn"] is not None else 0)
            key = (turn, int(inputs["order"][k]), bool(inputs["with_reference"][k]))
            rendered[key] = (prompt.system, prompt.user, chat_text(tokenizer, prompt) if prompt.chat else prompt.user)
    assert len(rows) == len(rendered) == 8  # 2 turns × 2 reference modes × 2 orders
    for row in rows:
        assert rendered[(row["turn"], row["order"], row["reference"])] == (row["system"], row["user"], row["prompt"])
        assert row["prompt"].endswith(row["user"] + "<|assistant|>") == row["chat"] == (profile == "mtbench-gpt4")


def test_a_chat_profile_goes_through_the_judges_chat_template(tmp_path, templated_judge):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(templated_judge)
    rows = export(tmp_path, f"data.source={GOLDEN / 'two_answers.jsonl'}", f"model.path={templated_judge}",
                  "judge.profile=prometheus2")
    for row in rows:
        messages = [{"role": "system", "content": row["system"]}, {"role": "user", "content": row["user"]}]
        assert row["chat"] and row["system"]
        assert row["prompt"] == tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_a_mode_or_a_conversation_the_profile_lacks_is_one_line(tmp_path, capsys):
    for args, message in (
            (["judge.profile=pandalm", "prompt.mode=multi", f"data.source={GOLDEN / 'three_answers.jsonl'}"],
             "error: judge.profile=pandalm has no multi mode"),
            (["judge.profile=autoj", f"data.source={GOLDEN / 'two_turns.jsonl'}"],
             "error: judge.profile=autoj has no multi-turn form")):
        assert main([*args, f"model.path={TINY_JUDGE}"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and len(err.strip().splitlines()) == 1, err
