"""Arena-Hard-Auto's statistics against its own show_result.py, and style control where the truth is known.

``tests/data/arena_hard_official``: synthetic judgments of the shipped v0.1 answers (``make_judgments.py``) and the
numbers Arena-Hard-Auto's show_result.py at 196f6b8 gave for them (``official.json``, written by
``run_official.py``, which says how it was run).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from judgelm.data.records import Record, Turn
from judgelm.judging.store import ChunkVerdicts, VerdictStore
from judgelm.judging.units import plan_units
from judgelm.profiles.arena_hard import LABEL_SCORES
from judgelm.results.leaderboard import build_leaderboard, write_leaderboard
from judgelm.scoring import arena_hard as ah
from judgelm.scoring.style import StyleNorm, answer_features, battle_features, markdown_counts

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "arena_hard_official"
ANSWERS = ROOT / "data" / "evaluation" / "arena_hard" / "arena-hard-v0.1" / "model_answer"
BASELINE = "gpt-4-0314"


def game(label: dict | None, model_is_a: bool) -> tuple[float, bool]:
    if label is None:
        return np.nan, False
    a, b = LABEL_SCORES[label["score"]]
    mine, other = (a, b) if model_is_a else (b, a)
    return float(np.sign(mine - other) + 1) / 2, abs(a - b) == 2


@pytest.fixture(scope="module")
def official():
    official = json.loads((FIXTURE / "official.json").read_text())
    rows = [json.loads(line) for line in (FIXTURE / "judgments.jsonl").read_text().split("\n") if line]
    answers = {}
    for path in ANSWERS.glob("*.jsonl"):
        for line in filter(None, path.read_text().split("\n")):
            r = json.loads(line)
            answers[r["model"], r["uid"]] = r["messages"][-1]["content"]["answer"]
    models = sorted({r["model"] for r in rows} | {BASELINE})
    played = [(game(r["games"][0], False), game(r["games"][1], True)) for r in rows]
    own = answer_features([answers[r["model"], r["uid"]] for r in rows])
    other = answer_features([answers[BASELINE, r["uid"]] for r in rows])
    uids = sorted({r["uid"] for r in rows})
    b, dropped = ah.battles_from_games(
        models, np.array([models.index(r["model"]) for r in rows]), np.full(len(rows), models.index(BASELINE)),
        np.array([uids.index(r["uid"]) for r in rows]), np.array([[g[0] for g in p] for p in played]),
        np.array([[g[1] for g in p] for p in played]), battle_features(own, other))
    theirs = np.array([official["answer_features"][r["model"]][r["uid"]] for r in rows])
    return official, models, b, dropped, own, theirs


def test_answer_features_are_the_authors(official):
    # token_len in o200k_base, header, list and bold counts: equal on all 1000 judged answers
    _, _, _, _, ours, theirs = official
    np.testing.assert_array_equal(ours, theirs)


def test_shipped_v2_metadata_is_reproduced():
    rows = [json.loads(line) for line in (ANSWERS.parents[1] / "arena-hard-v2.0" / "model_answer" /
                                          "o3-mini-2025-01-31.jsonl").read_text().split("\n") if line]
    meta = np.array([[m["token_len"]] + [sum(m[k].values()) for k in ("header_count", "list_count", "bold_count")]
                     for m in (r["metadata"] for r in rows)])
    np.testing.assert_array_equal(answer_features([r["messages"][-1]["content"]["answer"] for r in rows]), meta)


def test_code_is_removed_the_authors_way():
    text = "# Title\n```py\n# not a header\n- not a list\n```\n- item\n**bold** and __bold__\n1. one\n"
    assert markdown_counts(text) == (1, 2, 2)
    # The text between fences is deleted wherever else it occurs too.
    assert markdown_counts("```x```\nx") == (0, 0, 0)


def test_battles_are_weighted_as_theirs(official):
    off, models, b, dropped, _, _ = official
    assert len(b) == off["battle_rows"] and dropped == 40  # 41 unparsed games in 40 questions


def test_scores_equal_show_result(official):
    off, models, b, _, _, _ = official
    scores = ah.bootstrap_scores(b, rounds=100, level=0.90, seed=off["seed"])
    for m, values in scores.items():
        np.testing.assert_allclose(values, off["uncontrolled"][models[m]], rtol=1e-12)


def test_style_controlled_scores_equal_show_result(official):
    # Their fit stops after 50 L-BFGS steps in float32, ours is the exact maximum-likelihood fit (run to
    # convergence in float64, their own objective reaches ours): on this fixture that leaves 0.1 points.
    off, models, b, _, _, _ = official
    sc = ah.style_controlled(b, models.index(BASELINE), rounds=100, seed=off["seed"])
    for m, values in sc.winrate(0.90).items():
        np.testing.assert_allclose(values, off["style_controlled"][models[m]], atol=0.0015)
    np.testing.assert_allclose(sc.fit.coefficients, off["style_coefficients"], atol=0.003)
    assert sc.fit.coefficients[0] > 0.4  # the synthetic judge favours length, and the fit finds it


def test_fit_is_the_maximum_likelihood(official):
    _, models, b, _, _, _ = official
    s = StyleNorm.fit(b.style).apply(b.style)
    beta, gamma = ah.fit_bt(b, np.ones(len(b)), models.index(BASELINE), s)
    z = beta[b.model] - beta[b.opponent] + s @ gamma
    residual = 1 / (1 + np.exp(-z)) - b.outcome
    assert np.abs(s.T @ residual).max() < 1e-6 and abs(residual[b.model == 0].sum()) < 1e-6


def test_elo_v01_against_a_single_baseline_is_the_mean_outcome(official):
    # With battles against the baseline only, the fit reproduces each model's mean outcome exactly.
    _, models, b, _, _, _ = official
    elo = ah.elo_v01(b, models.index(BASELINE), rounds=20)
    for m in (0, 2):
        assert elo[m]["score"] == pytest.approx(b.outcome[b.model == m].mean(), abs=1e-6)
        assert elo[m]["lower"] < elo[m]["score"] < elo[m]["upper"]
    assert elo[1]["elo"] == 1000 and elo[1]["score"] == pytest.approx(0.5)


def alpaca_like_store(tmp_path: Path, verbose: float) -> VerdictStore:
    """A vs-baseline evaluation where a length-loving judge decides: ``long`` writes answers ``verbose`` times the
    baseline's length on most questions and shorter ones on the rest, ``even`` matches the baseline's length up to
    noise. The judge looks at length alone: it prefers the model's answer with probability σ(6 (l_m − l_b) / (l_m +
    l_b)) in its words (seeded draws per verdict), so no model is better than the baseline but by length."""
    rng = np.random.default_rng(0)
    records = []
    for q in range(400):
        base = "word " * int(rng.integers(40, 80))
        for model, factor in (("long", verbose if q % 4 else 0.5), ("even", rng.choice([0.8, 1.25]))):
            answer = "word " * int(len(base) / 5 * factor)
            records.append(Record(question_id=q, question=f"q{q}", answers=(base, answer), models=("base", model)))
    return length_judged_store(tmp_path, records, rng)


def length_judged_store(tmp_path: Path, records: list[Record], rng: np.random.Generator) -> VerdictStore:
    """The verdicts of that length-loving judge on every turn of ``records``, both orders."""
    plan = plan_units(records, "pair", "without", "both")
    store = VerdictStore.create(tmp_path / "verdicts.zarr", records, plan, n_scores=2, chunk_units=len(plan),
                                attrs={"mode": "pair", "evaluation": {"pairing": "vs-baseline", "baseline": "base"}})
    turns = [records[r].turns()[t].answers for r, t in zip(plan.record, plan.turn)]
    shown = [a[::-1] if o else a for a, o in zip(turns, plan.order)]
    words = np.array([[len(a.split()), len(b.split())] for a, b in shown], dtype=float)
    p_first = 1 / (1 + np.exp(-6 * (words[:, 0] - words[:, 1]) / words.sum(axis=1)))
    scores = np.where((rng.random(len(shown)) < p_first)[:, None], [[8, 2]], [[2, 8]]).astype(np.float32)
    n = len(plan)
    store.write_chunk(0, ChunkVerdicts(scores=scores, status=np.zeros(n, np.int8), text=[""] * n,
                                       prompt_tokens=np.zeros(n, np.int32), new_tokens=np.zeros(n, np.int32),
                                       truncated=np.zeros(n, bool)), attempt=0)
    return VerdictStore(store.path)


def test_style_control_removes_a_win_by_length(tmp_path):
    board = write_leaderboard(tmp_path, alpaca_like_store(tmp_path, verbose=3.0))["boards"]["without_reference"]
    rows = {r["model"]: r for r in board["rows"]}
    # Uncontrolled: "long" wins about 3/4 σ(3) + 1/4 σ(-2) = 74 % of its verdicts, by length alone.
    assert rows["long"]["win_rate"] > 65 and rows["long"]["rating"] > 1100
    assert abs(rows["even"]["win_rate"] - 50) < 10
    # Controlled (Arena-Hard's setting: win rates at the board's average length difference): length explains the
    # verdicts, so "long" is no better than "even".
    low, high = rows["long"]["style_controlled_rating_ci"]
    assert low < rows["even"]["style_controlled_rating"] < high
    assert abs(rows["long"]["style_controlled_winrate"] - rows["even"]["style_controlled_winrate"]) < 5
    assert board["style_control"]["fit"]["coefficients"][0] > 1  # 6 × the std of the length feature
    assert "style_controlled_rating" in (tmp_path / "leaderboard.md").read_text()
    saved = json.loads((tmp_path / "style_control.json").read_text())
    assert saved["features"] == ["length", "header", "list", "bold"] and len(saved["coefficients"]) == 4


def test_a_later_turn_is_style_controlled_by_its_own_answers(tmp_path):
    """Two-turn conversations: every model answers turn 1 exactly as the baseline does, and "long" answers turn 2
    three times longer on most questions. Turn 2's win by length is removed only if its comparisons are styled by the
    answers to turn 2 (the first turn's are identical: they explain nothing)."""
    from judgelm.judging.config import LeaderboardConfig
    from judgelm.results.leaderboard_md import format_leaderboard

    rng = np.random.default_rng(0)
    records = []
    for q in range(400):
        base, later = "word " * int(rng.integers(40, 80)), "word " * int(rng.integers(40, 80))
        for model, factor in (("long", 3.0 if q % 4 else 0.5), ("even", rng.choice([0.8, 1.25]))):
            second = Turn(f"more q{q}", (later, "word " * int(len(later) / 5 * factor)))
            records.append(Record(question_id=q, question=f"q{q}", answers=(base, base), models=("base", model),
                                  later_turns=(second,)))
    lb = build_leaderboard(length_judged_store(tmp_path, records, rng), settings=LeaderboardConfig(rounds=30))
    board = lb["boards"]["without_reference"]
    turn = {t: {r["model"]: r for r in board["turns"][t]["rows"]} for t in ("1", "2")}
    assert turn["2"]["long"]["win_rate"] > 65 and abs(turn["1"]["long"]["win_rate"] - 50) < 5
    assert abs(turn["2"]["long"]["style_controlled_winrate"] - turn["2"]["even"]["style_controlled_winrate"]) < 5
    low, high = turn["2"]["long"]["style_controlled_rating_ci"]
    assert low < turn["2"]["even"]["style_controlled_rating"] < high
    assert board["turns"]["2"]["style_control"]["battles"] == 800  # 400 questions x 2 models, turn 2 only
    assert "Style-controlled win rate per turn" in format_leaderboard(lb)


def test_uncentred_style_control_reads_the_score_at_equal_length(tmp_path):
    from judgelm.judging.config import LeaderboardConfig

    store = alpaca_like_store(tmp_path, verbose=3.0)
    board = build_leaderboard(store, settings=LeaderboardConfig(rounds=30, style_center=False))
    rows = {r["model"]: r for r in board["boards"]["without_reference"]["rows"]}
    # The truth: at equal length neither model is preferred to the baseline.
    for model in ("long", "even"):
        low, high = rows[model]["style_controlled_winrate_ci"]
        assert low < 50 < high and abs(rows[model]["style_controlled_winrate"] - 50) < 5


def test_frozen_style_keeps_a_score_when_a_model_is_added(tmp_path):
    from judgelm.judging.config import LeaderboardConfig

    store = alpaca_like_store(tmp_path, verbose=3.0)
    first = write_leaderboard(tmp_path, store)["boards"]["without_reference"]
    frozen = LeaderboardConfig(rounds=30, style_frozen=str(tmp_path / "style_control.json"), style_freeze="all")
    with_all = build_leaderboard(store, settings=frozen)["boards"]["without_reference"]
    # Coefficients frozen: each model's strength is fitted alone, so dropping "even" from the board (as if it were
    # added later) leaves "long"'s style-controlled rating as it was.
    keep = np.array([m == "long" for m in store.record_models()[:, 1]])
    only_long = build_leaderboard(_subset_store(tmp_path, store, keep), settings=frozen)["boards"]["without_reference"]
    a = {r["model"]: r for r in with_all["rows"]}["long"]["style_controlled_winrate"]
    b = {r["model"]: r for r in only_long["rows"]}["long"]["style_controlled_winrate"]
    assert a == pytest.approx(b, abs=1e-9)
    assert with_all["style_control"]["frozen"] == "all" and first["style_control"]["frozen"] == ""


def _subset_store(tmp_path: Path, store: VerdictStore, keep: np.ndarray) -> VerdictStore:
    records = [Record(question_id=q, question=t, answers=tuple(a), models=tuple(m)) for q, t, a, m, k in zip(
        store.records("question_id"), store.records("question"), store.records("answers"), store.records("models"),
        keep) if k]
    plan = plan_units(records, "pair", "without", "both")
    sub = VerdictStore.create(tmp_path / "sub.zarr", records, plan, n_scores=2, chunk_units=len(plan),
                              attrs=dict(store.attrs))
    units = np.flatnonzero(keep[store.units("record")])
    n = len(plan)
    sub.write_chunk(0, ChunkVerdicts(scores=store.verdicts("scores")[units], status=np.zeros(n, np.int8),
                                     text=[""] * n, prompt_tokens=np.zeros(n, np.int32),
                                     new_tokens=np.zeros(n, np.int32), truncated=np.zeros(n, bool)), attempt=0)
    return VerdictStore(sub.path)
