"""``make evaluate MODELS=…`` on the local executor: the models generate, the judge judges, the leaderboard comes
out; with one more model only its answers are generated and only its units judged (a re-run generating nothing is
tests/test_generate.py's, judging nothing tests/test_evaluate_run.py's)."""

import json

import pytest

from judgelm.generation.evaluation import generation_runs
from judgelm.rundir import RunDir
from launch import evaluate
from launch import status as launch_status
from launch.submission import read_submissions
from tests.conftest import build_random_chat_model


def run(tmp_path, judge, name, models) -> int:
    return evaluate.main([f"model.path={judge}", f"runs_dir={tmp_path}", f"run={name}", "shards=1",
                          f"evaluate.generate=[{','.join(str(m) for m in models)}]", "evaluate.questions=alpaca_eval",
                          "evaluate.limit=3", "generation.engine.max_new_tokens=6", "generation.shards=1"])


def generated_by(tmp_path, name) -> dict[str, int]:
    """Per model of the run, how many generation arrays it submitted."""
    return {r.name: len(read_submissions(r)) for r in generation_runs(RunDir(tmp_path / name))}


@pytest.mark.slow  # two evaluations, each starting generation and judging processes
def test_models_are_generated_then_judged_and_only_what_is_new_costs(tmp_path, random_judge, random_chat_models,
                                                                      capsys):
    """``make evaluate MODELS=a,b`` (``launch.evaluate`` through ``run``), then again with a third model."""
    a, b = random_chat_models
    assert run(tmp_path, random_judge, "two", [a, b]) == 0
    out = capsys.readouterr().out
    assert "0 of 6 answers from the answer cache, 6 generated." in out  # 3 instructions x 2 models
    assert "0 of 12 units from the verdict cache, 12 judged." in out  # x 2 orders against the baseline
    assert "# Model leaderboard: run two" in out and "| chat-a |" in out and "| gpt4_1106_preview |" in out
    assert "toy models (under 100M parameters) built on this machine" in out
    assert generated_by(tmp_path, "two") == {"chat-a": 1, "chat-b": 1}
    table = launch_status.status_table(RunDir(tmp_path / "two"))
    assert "## answers of chat-a" in table and "run two/generated/chat-b (model chat-b, cfg" in table
    assert "## judging" in table and "12/12 units (100.0 %)" in table

    c = build_random_chat_model(tmp_path / "models" / "chat-c", seed=2)
    assert run(tmp_path, random_judge, "three", [a, b, c]) == 0
    out = capsys.readouterr().out
    assert "6 of 9 answers from the answer cache, 3 generated." in out
    assert "12 of 18 units from the verdict cache, 6 judged." in out
    assert generated_by(tmp_path, "three") == {"chat-a": 0, "chat-b": 0, "chat-c": 1}  # only the new model ran

    def rows(name):
        board = json.loads((tmp_path / name / "leaderboard.json").read_text())["boards"]["without_reference"]
        return {r["model"]: r for r in board["rows"]}

    two, three = rows("two"), rows("three")
    for model in ("chat-a", "chat-b"):  # the same answers, the same verdicts
        assert three[model]["win_rate"] == two[model]["win_rate"] and three[model]["n_total"] == 3


def test_mistakes_are_one_line_and_leave_nothing(tmp_path, random_judge, random_chat_models, capsys):
    a = random_chat_models[0]
    assert run(tmp_path, random_judge, "twice", [a, a]) == 2
    assert "two models would file their answers under one name" in capsys.readouterr().err
    assert run(tmp_path, random_judge, "missing", [tmp_path / "no-such-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model.path=") and len(err.splitlines()) == 1
    assert not (tmp_path / "twice").exists() and not (tmp_path / "missing").exists()
