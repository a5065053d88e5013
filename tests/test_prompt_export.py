"""``make prompts`` (``launch.prompts``): every profile's prompts for every unit, checked against golden files.

The golden files in ``tests/golden/prompt_export/<profile>/<mode>.jsonl`` are ``make prompts`` output for one record
(``two_answers.jsonl``; ``three_answers.jsonl`` for multi-answer grading) with the shipped tiny judge's tokenizer,
which has no chat template. The profiles' texts themselves are checked against their authors' templates in
``test_profiles.py``; these files pin what the export makes of them: units, orders, reference modes, parts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from judgelm.data.records import load_records
from judgelm.profiles import PROFILES
from judgelm.profiles.prompts import Mode, build_prompt
from launch.prompts import main
from tests.conftest import write_pairs

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "prompt_export"
TINY_JUDGE = REPO / "models" / "tiny-judge"


def data_for(mode: str) -> Path:
    return GOLDEN / ("three_answers.jsonl" if mode == Mode.MULTI.value else "two_answers.jsonl")


def export(tmp_path: Path, *args: str) -> list[dict]:
    out = tmp_path / "prompts.jsonl"
    assert main([*args, f"out={out}"]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


# Every registered profile and every mode it has: a profile added without its golden file fails below.
CASES = [pytest.param(name, mode.value, id=f"{name}/{mode.value}") for name, cls in PROFILES.items()
         for mode in cls.modes]


@pytest.mark.parametrize("profile, mode", CASES)
def test_every_profile_and_mode_renders_its_golden_file(tmp_path, profile, mode):
    golden = GOLDEN / profile / f"{mode}.jsonl"
    rel = golden.relative_to(REPO)
    if not golden.is_file():
        pytest.fail(f"profile {profile!r} has mode {mode!r} but no golden file {rel}: create it with\n  make prompts "
                    f"DATA={data_for(mode).relative_to(REPO)} ARGS=\"judge.profile={profile} prompt.mode={mode} "
                    f"out={rel}\"\nand check its text against the profile authors' template")
    rows = export(tmp_path, f"data.source={data_for(mode)}", f"model.path={TINY_JUDGE}", f"judge.profile={profile}",
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
    only = export(tmp_path, f"data.source={data}", f"model.path={TINY_JUDGE}", "prompt.orders=original",
                  "prompt.reference=without", "data.limit=3")
    assert [(r["question_id"], r["order"], r["reference"]) for r in only] == [(0, 0, False), (1, 0, False),
                                                                              (2, 0, False)]


def test_a_chat_profile_goes_through_the_judges_chat_template(tmp_path, random_judge):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(random_judge)
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    shutil.copytree(random_judge, tmp_path / "judge")
    tok.save_pretrained(tmp_path / "judge")
    rows = export(tmp_path, f"data.source={data_for('pair')}", f"model.path={tmp_path / 'judge'}",
                  "judge.profile=mtbench-gpt4")
    for row in rows:
        messages = [{"role": "system", "content": row["system"]}, {"role": "user", "content": row["user"]}]
        assert row["chat"] and row["system"]
        assert row["prompt"] == tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert row["prompt"].endswith(row["user"] + "<|assistant|>")


def test_a_mode_the_profile_lacks_is_one_line(tmp_path, capsys):
    assert main([f"data.source={data_for('multi')}", f"model.path={TINY_JUDGE}", "judge.profile=pandalm",
                 "prompt.mode=multi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: judge.profile=pandalm has no multi mode") and len(err.strip().splitlines()) == 1
