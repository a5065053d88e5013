"""Importing AlpacaEval's shipped GPT-4 Turbo annotations reproduces its published leaderboard rows."""

import csv
import json
from pathlib import Path

import pytest

from launch import import_verdicts

DATA = Path(__file__).resolve().parents[1] / "data" / "evaluation" / "alpaca_eval"
EXACT = ("n_wins", "n_wins_base", "n_draws", "n_total", "avg_length", "discrete_win_rate")
SUMS = ("win_rate", "standard_error")


def test_import_reproduces_the_published_leaderboard(tmp_path, capsys):
    files = ",".join(str(p) for p in sorted(DATA.glob("*/annotations.json")))
    assert import_verdicts.main(["format=alpaca_eval", f"verdicts={files}", "run=gpt4t", f"runs_dir={tmp_path}",
                                 "judge=gpt4_turbo"]) == 0
    out = capsys.readouterr().out
    assert "imported 4830 annotations from 6 file(s)" in out and "| claude-2.1 |" in out
    board = json.loads((tmp_path / "gpt4t" / "leaderboard.json").read_text())["boards"]["without_reference"]
    ours = {r["model"]: r for r in board["rows"]}
    published = {row[""]: row for row in csv.DictReader((DATA / "leaderboard_excerpt.csv").open())}
    assert set(ours) == set(published) and board["baseline"] == "gpt4_1106_preview"
    for model, want in published.items():
        for key in EXACT:
            assert ours[model][key] == float(want[key]), (model, key)
        for key in SUMS:  # float64 sums over 805 values: equal but for the order of summation (one unit in the last
            # place for gpt-3.5-turbo-1106 and Qwen-14B-Chat, whose published figures no summation order of the
            # shipped files gives exactly)
            assert ours[model][key] == pytest.approx(float(want[key]), rel=1e-15, abs=1e-15), (model, key)
    by_win_rate = sorted(published, key=lambda m: -float(published[m]["win_rate"]))
    assert [r["model"] for r in board["rows"]] == by_win_rate
    assert (tmp_path / "gpt4t" / "leaderboard_ratings_without_reference.png").stat().st_size > 0


def test_a_bad_preference_is_one_line_naming_file_and_item(tmp_path, capsys):
    rows = json.loads((DATA / "alpaca-7b" / "annotations.json").read_text())[:3]
    rows[2]["preference"] = 3
    bad = tmp_path / "annotations.json"
    bad.write_text(json.dumps(rows))
    assert import_verdicts.main(["format=alpaca_eval", f"verdicts={bad}", "run=bad", f"runs_dir={tmp_path}"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {bad}[item 2]: field 'preference': expected a value in [1, 2] "
                                               "(or 0 for a draw), got 3.0")
    assert not (tmp_path / "bad").exists()  # nothing half-made to clean up before trying again
