"""A model evaluation end to end on the local executor: the verdict cache judges only what is new."""

import json

import pytest

from launch import evaluate

QUESTIONS = ["What is 2+2?", "Name a prime number.", "Write a haiku."]


def answers_file(path, models):
    rows = [{"question_id": q, "question": text, "model": m, "answer": f"{m} says {'yes ' * (q + len(m))}",
             "category": "math" if q < 2 else "writing"} for q, text in enumerate(QUESTIONS) for m in models]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(tmp_path, judge, name, answers):
    return evaluate.main([f"model.path={judge}", f"runs_dir={tmp_path}", f"run={name}", "shards=1",
                          f"evaluate.answers=[generic:{answers}]", "evaluate.baseline=base", "evaluate.limit=0",
                          "evaluate.reference_verdicts=''", "store.chunk_units=4"])


@pytest.mark.slow  # three runs on the local executor, each starting a judge process
def test_adding_a_model_judges_only_its_units_and_a_rerun_judges_none(tmp_path, random_judge, capsys):
    assert run(tmp_path, random_judge, "six", answers_file(tmp_path / "a.jsonl", ["base", "m1", "m2"])) == 0
    first = capsys.readouterr().out
    assert "0 of 12 units from the verdict cache, 12 judged." in first  # 3 questions x 2 models x 2 orders
    assert "# Model leaderboard: run six" in first and "| m1 |" in first

    assert run(tmp_path, random_judge, "seven", answers_file(tmp_path / "b.jsonl", ["base", "m1", "m2", "m3"])) == 0
    assert "12 of 18 units from the verdict cache, 6 judged." in capsys.readouterr().out  # only m3's 3 x 2 units
    m = json.loads((tmp_path / "seven" / "metrics.json").read_text())
    assert m["units_from_cache"] == 12

    assert run(tmp_path, random_judge, "again", tmp_path / "b.jsonl") == 0
    assert "18 of 18 units from the verdict cache, 0 judged." in capsys.readouterr().out

    def rows(name):
        board = json.loads((tmp_path / name / "leaderboard.json").read_text())["boards"]["without_reference"]
        return {r["model"]: r for r in board["rows"]}

    old, new, again = rows("six"), rows("seven"), rows("again")
    for model in ("m1", "m2"):  # the cached verdicts are the same verdicts
        assert new[model]["win_rate"] == old[model]["win_rate"] and new[model]["n_total"] == 3
    assert again == new
    assert set(json.loads((tmp_path / "seven" / "leaderboard.json").read_text())["boards"]["without_reference"]
               ["by_category"]) == {"math", "writing"}


def test_a_bad_answers_file_is_one_line(tmp_path, random_judge, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question_id": 1, "question": "Q", "model": "m"}\n')
    assert run(tmp_path, random_judge, "bad", bad) == 2
    assert capsys.readouterr().err.strip() == f"error: {bad}:1: field 'answer': missing"
    with pytest.raises(FileNotFoundError):
        (tmp_path / "bad" / "config.yaml").read_text()


@pytest.mark.slow  # one run on the local executor
def test_the_reference_leaderboard_built_while_the_shards_run_reaches_the_merge(tmp_path, random_judge, capsys):
    # A local run builds the reference judge's board in the launcher while its worker starts; the merge must see it.
    assert evaluate.main([f"model.path={random_judge}", f"runs_dir={tmp_path}", "run=ref", "shards=1",
                          "evaluate.limit=2", "store.chunk_units=8"]) == 0
    out = capsys.readouterr().out
    reference = json.loads((tmp_path / "ref" / "reference_leaderboard.json").read_text())
    assert reference["judge"] == "GPT-4 Turbo (AlpacaEval)"
    assert "Against GPT-4 Turbo (AlpacaEval) on the same answers" in out
    assert "| claude-2.1 |" in out.split("Against GPT-4 Turbo (AlpacaEval)")[1]
