"""Arena-Hard-Auto and RocketEval end to end with the shipped tiny judge: `make evaluate` on the shipped data through
shards, the merge, the verdict cache and `make report`. The tiny judge's figures prove the pipeline, not the ranking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from launch import evaluate, report

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "models" / "tiny-judge"
ARENA_V01 = ROOT / "data" / "evaluation" / "arena_hard" / "arena-hard-v0.1" / "model_answer"
ALPACA = ROOT / "data" / "evaluation" / "alpaca_eval"


def arena_hard(tmp_path: Path, run: str) -> int:
    return evaluate.main([f"model.path={TINY}", f"runs_dir={tmp_path}", f"run={run}", "shards=2",
                          f"evaluate.answers=[arena_hard:{ARENA_V01}/gpt-4-0314.jsonl,arena_hard:{ARENA_V01}/gpt-4-0613.jsonl]",
                          "evaluate.baseline=gpt-4-0314", "judge.profile=arena-hard", "evaluate.limit=3",
                          "engine.max_new_tokens=24", "leaderboard.rounds=20"])


@pytest.mark.slow  # two evaluations and a report on the local executor
def test_arena_hard_evaluation_end_to_end(tmp_path, capsys):
    assert arena_hard(tmp_path, "ah") == 0
    out = capsys.readouterr().out
    # The AlpacaEval reference does not apply here: a warning in the log (on stdout), no reference board.
    assert "WARNING launch.evaluate: no reference leaderboard" in out and "annotates none of the" in out
    metrics = json.loads((tmp_path / "ah" / "metrics.json").read_text())
    assert metrics["units"] == 6 and metrics["complete"]  # 3 questions x 1 model x 2 orders
    group = metrics["groups"]["without_reference"]
    # The tiny judge writes JudgeLM score lines, never an Arena-Hard label: every verdict it gives is a counted parse
    # failure (greedy decoding: always), no question enters the battles, and nothing is counted as a tie.
    assert group["parse_failures"] + group["prompt_too_long"] == 6 and group["parse_failures"] >= 1
    board = json.loads((tmp_path / "ah" / "leaderboard.json").read_text())
    assert board["note"].startswith("The judge is the tiny judge")
    assert board["boards"]["without_reference"]["rows"] == []
    assert "no verdict parsed" in board["boards"]["without_reference"]["note"]
    assert "Model leaderboard: run ah" in out

    # Run again under another name: every verdict comes from the verdict cache.
    assert arena_hard(tmp_path, "ah-again") == 0
    assert "6 of 6 units from the verdict cache, 0 judged." in capsys.readouterr().out
    assert report.main([f"runs=[{tmp_path / 'ah'}]"]) == 0
    assert (tmp_path / "ah" / "report.md").exists()


@pytest.mark.slow  # one evaluation of 72 checklist units with the tiny judge, and its merge
def test_rocketeval_evaluation_end_to_end(tmp_path, capsys):
    checklists = [json.loads(line) for line in (ALPACA / "checklists_standin.jsonl").read_text().splitlines()]
    scores = tmp_path / "gpt4_scores.jsonl"  # a stand-in strong judge's scores of two models on every question
    scores.write_text("".join(json.dumps({"question": c["question"], "model": m, "score": s}) + "\n"
                              for k, c in enumerate(checklists) for m, s in (("claude-2.1", 8 - k % 3),
                                                                            ("alpaca-7b", 3 + k % 4))))
    argv = [f"model.path={TINY}", f"runs_dir={tmp_path}", "run=rk", "shards=2", "judge.profile=rocketeval",
            "evaluate.pairing=checklist", f"evaluate.checklists={ALPACA / 'checklists_standin.jsonl'}",
            f"evaluate.reference_scores={scores}", "evaluate.limit=0", "engine.logprobs_topk=4096",
            "evaluate.models=[alpaca-7b,claude-2.1,gpt4_1106_preview]", "leaderboard.rounds=20"]
    assert evaluate.main(argv) == 0
    out = capsys.readouterr().out
    board = json.loads((tmp_path / "rk" / "leaderboard.json").read_text())["boards"]["checklist"]
    n_items = sum(len(c["checklist"]) for c in checklists)
    assert board["units"] == 3 * n_items and board["questions"] == len(checklists)
    # With its whole vocabulary as top-k the tiny judge always has "YES"/"No" candidates: every item has a P(Yes).
    assert board["units_with_probability"] == board["units"]
    assert board["supervised_questions"] == len(checklists)
    rows = {r["model"]: r for r in board["rows"]}
    assert set(rows) == {"alpaca-7b", "claude-2.1", "gpt4_1106_preview"}
    assert all(1 <= r["mean_score"] <= 10 and r["n_scored"] == len(checklists) for r in rows.values())
    assert rows["claude-2.1"]["reference_scores"] == len(checklists)
    pairwise = board["pairwise"]
    assert {r["model"] for r in pairwise["rows"]} == set(rows) and pairwise["baseline"] == "gpt4_1106_preview"
    assert "style_controlled_winrate" in pairwise["rows"][0]
    assert "RocketEval over 8 questions" in out and "tiny judge" in out
