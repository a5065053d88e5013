"""``QUESTIONS=arena-hard`` (v2.0) and ``arena-hard-v0.1``: the question sets, and ``make evaluate MODELS=…`` judging
the generated answers as Arena-Hard-Auto does (its profile, its baseline, its judge's budget), refusing settings
that contradict it in one line."""

import json

import pytest

from judgelm.data import arena_hard
from judgelm.data.answers import load_answers
from judgelm.generation.questions import load_questions, question_set
from launch import evaluate
from tests.conftest import TINY_CHAT

TINY_JUDGE = TINY_CHAT.parent / "tiny-judge"


@pytest.mark.parametrize("name,version,n", [("arena-hard", "v2.0", 500), ("arena-hard-v0.1", "v0.1", 500)])
def test_arena_hard_sets_are_the_judged_prompts_with_their_baseline(name, version, n):
    qset = question_set(name)
    questions = load_questions(qset)
    v = arena_hard.version(version)
    assert len(questions) == n and {q.category for q in questions} == set(v.categories)
    assert qset.baseline == v.baseline and qset.judge_profile == "arena-hard"
    assert qset.judge_max_new_tokens == v.judge_max_new_tokens and qset.max_new_tokens == 4096
    baseline = load_answers(qset.answers)
    assert all(v.baseline in baseline.answers[str(q.question_id)] for q in questions)
    if version == "v2.0":  # the creative-writing prompts have no shipped baseline: left out, and said so
        assert len(arena_hard.questions(version)) == 750 and "creative-writing" in qset.note


def dry_run(tmp_path, *args: str) -> list[str]:
    return [f"model.path={TINY_JUDGE}", f"runs_dir={tmp_path}", f"evaluate.generate=[{TINY_CHAT}]",
            "dry_run=true", *args]


def test_evaluation_takes_the_sets_judge_and_refuses_what_contradicts_it(tmp_path, capsys):
    assert evaluate.main(dry_run(tmp_path, "evaluate.questions=arena-hard-v0.1", "engine.max_new_tokens=256")) == 0
    out = capsys.readouterr().out
    for line in ("  profile: arena-hard", "  baseline: gpt-4-0314", "  pairing: vs-baseline", "  max_new_tokens: 256",
                 "arena-hard-v0.1/model_answer/gpt-4-0314.jsonl"):
        assert line in out, line
    for bad, says in (("judge.profile=judgelm", "error: judge.profile=judgelm: QUESTIONS=arena-hard is judged with "
                                                "judge.profile=arena-hard"),
                      ("evaluate.pairing=all-pairs", "error: evaluate.pairing=all-pairs: QUESTIONS=arena-hard"),
                      ("leaderboard.rounds=5", "error: engine.max_new_tokens=16000 (the arena-hard judge's) leaves no "
                                               "room for a prompt")):  # v2.0's 16000 tokens > the tiny judge's 2048
        assert evaluate.main(dry_run(tmp_path, "evaluate.questions=arena-hard", bad)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith(says), err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # generation of 2 answers, 4 judged units and the merge
def test_generated_answers_are_judged_as_arena_hard(tmp_path, capsys):
    assert evaluate.main([f"model.path={TINY_JUDGE}", f"runs_dir={tmp_path}", "run=ah", "shards=1",
                          f"evaluate.generate=[{TINY_CHAT}]", "evaluate.questions=arena-hard-v0.1", "evaluate.limit=2",
                          "generation.engine.max_new_tokens=16", "generation.shards=1", "engine.max_new_tokens=24",
                          "leaderboard.rounds=10"]) == 0
    out = capsys.readouterr().out
    assert "0 of 4 units from the verdict cache, 4 judged." in out  # 2 prompts x 2 orders against gpt-4-0314
    metrics = json.loads((tmp_path / "ah" / "metrics.json").read_text())
    group = metrics["groups"]["without_reference"]
    # The tiny judge never writes an Arena-Hard label: counted parse failures, never ties.
    assert metrics["units"] == 4 and group["parse_failures"] + group["prompt_too_long"] == 4
    board = json.loads((tmp_path / "ah" / "leaderboard.json").read_text())
    assert board["baseline"] == "gpt-4-0314" and board["pairing"] == "vs-baseline"
    assert "profile: arena-hard" in (tmp_path / "ah" / "config.yaml").read_text()
    assert "no verdict parsed" in board["boards"]["without_reference"]["note"]
    assert "pairing vs-baseline, baseline gpt-4-0314" in out and "tiny judge" in out
