"""Leaderboard statistics: Bradley–Terry against a hand-solved case and scikit-learn, win-rate and tie rules, both-order
aggregation from a real store, length control and rank agreement."""

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from judgelm.data.records import Record
from judgelm.judging.store import ChunkVerdicts, VerdictStore
from judgelm.judging.units import plan_units
from judgelm.results.leaderboard import build_leaderboard, write_leaderboard
from judgelm.scoring import ratings as lb
from judgelm.scoring.outcomes import comparisons


def comps(models, rows, lengths=None):
    """``rows``: (question, a, b, pref_b) with model names."""
    idx = {m: i for i, m in enumerate(models)}
    q, a, b, p = zip(*rows)
    n = len(rows)
    la, lb_ = (np.array(x) for x in zip(*lengths)) if lengths else (np.full(n, 100), np.full(n, 100))
    return lb.Comparisons(models=list(models), question=np.array(q), a=np.array([idx[x] for x in a]),
                          b=np.array([idx[x] for x in b]), pref_b=np.array(p, dtype=float), len_a=la, len_b=lb_,
                          category=np.array([""] * n), consistent=np.full(n, np.nan))


def test_bradley_terry_hand_solved():
    # A tree of comparisons: the maximum-likelihood log-odds of each edge is log(wins / losses), ties as halves.
    # A–B: A wins 2, ties 2, loses 1 -> 3 : 2. B–C: B wins 1, C wins 1 -> even. A is the anchor (1000).
    rows = [(0, "A", "B", 0), (1, "A", "B", 0), (2, "A", "B", 0.5), (3, "A", "B", 0.5), (4, "A", "B", 1),
            (5, "B", "C", 0), (6, "B", "C", 1)]
    c = comps(["A", "B", "C"], rows)
    ratings, _ = lb.bradley_terry(c, anchor=0, n_boot=0, l2=1e-10)
    assert ratings[0] == pytest.approx(1000)
    assert ratings[0] - ratings[1] == pytest.approx(400 * math.log10(3 / 2), abs=1e-4)
    assert ratings[1] == pytest.approx(ratings[2], abs=1e-4)


def test_bradley_terry_matches_an_independent_logistic_regression():
    rng = np.random.default_rng(3)
    models = ["m0", "m1", "m2", "m3"]
    rows = []
    for q in range(300):
        a, b = rng.choice(4, 2, replace=False)
        rows.append((q, models[a], models[b], rng.choice([0.0, 0.5, 1.0], p=[0.4 - 0.08 * (b - a), 0.2,
                                                                         0.4 + 0.08 * (b - a)])))
    c = comps(models, rows)
    l2 = 0.01
    ours = lb.bt_strengths(lb.win_matrix(c), l2)
    # Chatbot Arena's formulation: +1 for slot 1, -1 for slot 2, y = slot 1 won; a tie is half a win each way.
    x = np.zeros((2 * len(c), 4))
    x[np.arange(len(c)), c.a] = 1
    x[np.arange(len(c)), c.b] = -1
    x[len(c):] = x[:len(c)]
    y = np.r_[np.ones(len(c)), np.zeros(len(c))]
    w = np.r_[1 - c.pref_b, c.pref_b]
    fit = LogisticRegression(fit_intercept=False, C=1 / l2, tol=1e-12, max_iter=10_000).fit(x, y, sample_weight=w)
    np.testing.assert_allclose(ours, fit.coef_[0], atol=1e-5)


def test_bootstrap_interval_contains_the_rating_and_is_reproducible():
    rows = [(q, "base", "m", float(q % 3 == 0)) for q in range(60)]
    c = comps(["base", "m"], rows)
    r1, ci1 = lb.bradley_terry(c, anchor=0, n_boot=100, seed=1)
    r2, ci2 = lb.bradley_terry(c, anchor=0, n_boot=100, seed=1)
    np.testing.assert_array_equal(ci1, ci2)
    assert ci1[1, 0] < r1[1] < ci1[1, 1] and r1[1] < 1000  # m wins a third: rated below the baseline


def test_head_to_head_counts_ties_as_half_and_uses_the_sample_standard_error():
    p = np.array([1, 0, 0.5, 0.5, 0.75, 0.25, 0])
    h = lb.head_to_head(p)
    assert h["win_rate"] == pytest.approx(100 * 3 / 7)
    assert (h["n_wins"], h["n_wins_base"], h["n_draws"], h["n_total"]) == (2, 3, 2, 7)
    assert h["discrete_win_rate"] == pytest.approx(100 * 3 / 7)
    assert h["standard_error"] == pytest.approx(100 * np.std(p, ddof=1) / math.sqrt(7))


def test_win_rate_matrix_and_rank_agreement():
    c = comps(["a", "b", "c"], [(0, "a", "b", 0.0), (1, "a", "b", 0.5), (2, "b", "c", 1.0)])
    m = lb.win_rate_matrix(c)
    assert m[0][1] == pytest.approx(75) and m[1][0] == pytest.approx(25) and m[0][2] is None
    agree = lb.rank_agreement({"a": 3, "b": 2, "c": 1, "d": 0}, {"a": 3, "b": 1, "c": 2, "e": 5})
    assert agree["models"] == ["a", "b", "c"] and agree["flips"] == [["b", "c"]]
    assert agree["spearman"] == pytest.approx(0.5) and agree["kendall"] == pytest.approx(1 / 3)


def test_length_control_removes_a_pure_length_preference():
    # The judge prefers longer answers and nothing else, in exactly the model's form (tanh of the normalised length
    # difference); one model writes longer than the baseline, one shorter. Raw win rates are far apart, the
    # length-controlled ones (predicted at zero length difference) are 50.
    rng = np.random.default_rng(0)
    rows, lengths = [], []
    for m, (lo, hi) in (("long", (-200, 800)), ("short", (-800, 200))):
        d = rng.uniform(lo, hi, 400).round()
        p = 1 / (1 + np.exp(-2 * np.tanh(d / d.std(ddof=1))))
        rows += [(q, "base", m, p[q]) for q in range(400)]
        lengths += [(1000, 1000 + d[q]) for q in range(400)]
    c = comps(["base", "long", "short"], rows, lengths)
    raw = {m: 100 * c.of_model(k)[0].mean() for k, m in enumerate(c.models)}
    lc = lb.length_controlled_winrates(c, baseline=0, difficulty_l2=1.0)
    assert raw["long"] > 65 and raw["short"] < 35
    assert lc[0] == 50 and lc[1] == pytest.approx(50, abs=1) and lc[2] == pytest.approx(50, abs=1)


def test_both_orders_of_a_record_are_averaged_from_the_store(tmp_path):
    records = [Record(question_id=q, question=f"q{q}", answers=("base answer", f"m answer {q}"),
                      models=("base", "m"), category="c") for q in range(3)]
    plan = plan_units(records, "pair", "without", "both")
    store = VerdictStore.create(tmp_path / "s.zarr", records, plan, n_scores=2, chunk_units=len(plan))
    # Scores as the judge wrote them, in the slot order it saw (order 1: the model's answer in slot 1).
    by_unit = {(0, 0): (8, 2), (0, 1): (8, 2),  # slot 1 wins both times: the order decides -> a tie overall
               (1, 0): (2, 8), (1, 1): (9, 1),  # the model wins in both orders -> 1, consistent
               (2, 0): (np.nan, np.nan), (2, 1): (5, 5)}  # a parse failure and a tie -> 1/2
    scores = np.array([by_unit[int(r), int(o)] for r, o in zip(plan.record, plan.order)], dtype=np.float32)
    n = len(plan)
    store.write_chunk(0, ChunkVerdicts(scores=scores, status=np.zeros(n, np.int8), text=[""] * n,
                                       prompt_tokens=np.zeros(n, np.int32), new_tokens=np.zeros(n, np.int32),
                                       truncated=np.zeros(n, bool)), attempt=0)
    c = comparisons(VerdictStore(store.path))
    assert c.models == ["base", "m"] and c.a.tolist() == [0, 0, 0] and c.b.tolist() == [1, 1, 1]
    np.testing.assert_allclose(c.pref_b, [0.5, 1.0, 0.5])
    np.testing.assert_array_equal(c.consistent, [0.0, 1.0, 1.0])
    assert lb.order_consistency(c) == {"base vs m": {"consistency": pytest.approx(2 / 3), "n": 3}}


def test_single_answer_board_means_scores_and_leaves_parse_failures_out(tmp_path):
    records = [Record(question_id=q, question=f"q{q}", answers=("gold", f"{m} {q}"), models=("reference", m),
                      category="c" if q else "d") for q in range(2) for m in ("x", "y")]
    plan = plan_units(records, "single", "without", "original")
    store = VerdictStore.create(tmp_path / "s.zarr", records, plan, n_scores=1, chunk_units=len(plan),
                                attrs={"mode": "single", "evaluation": {"pairing": "single", "baseline": ""}})
    scores = np.array([[7], [3], [np.nan], [5]], dtype=np.float32)  # x: 7, failed; y: 3, 5
    n = len(plan)
    store.write_chunk(0, ChunkVerdicts(scores=scores, status=np.zeros(n, np.int8), text=[""] * n,
                                       prompt_tokens=np.zeros(n, np.int32), new_tokens=np.zeros(n, np.int32),
                                       truncated=np.zeros(n, bool)), attempt=0)
    board = build_leaderboard(VerdictStore(store.path))["boards"]["single"]
    rows = {r["model"]: r for r in board["rows"]}
    assert rows["x"]["mean_score"] == 7 and rows["x"]["parse_failures"] == 1 and rows["x"]["score_ci95"] is None
    # y: standard deviation sqrt(2) over 2 scores, a standard error of 1
    assert rows["y"]["mean_score"] == 4 and rows["y"]["score_ci95"] == pytest.approx([4 - 1.96, 4 + 1.96])
    assert board["by_category"] == {"c": {"x": None, "y": 5.0}, "d": {"x": 7.0, "y": 3.0}}


def test_all_pairs_run_writes_matrix_table_and_heat_map(tmp_path):
    models = ["a", "b", "c"]
    records = [Record(question_id=q, question=f"q{q}", answers=(f"{x} {q}", f"{y} {q}"), models=(x, y))
               for q in range(4) for x, y in (("a", "b"), ("a", "c"), ("b", "c"))]
    plan = plan_units(records, "pair", "without", "both")
    store = VerdictStore.create(tmp_path / "verdicts.zarr", records, plan, n_scores=2, chunk_units=len(plan),
                                attrs={"mode": "pair", "evaluation": {"pairing": "all-pairs", "baseline": ""}})
    # The judge prefers the alphabetically earlier model whatever the order: a beats b and c, b beats c.
    first = np.array([min(records[r].models) == records[r].models[o] for r, o in zip(plan.record, plan.order)])
    scores = np.where(first[:, None], [[8, 2]], [[2, 8]]).astype(np.float32)
    n = len(plan)
    store.write_chunk(0, ChunkVerdicts(scores=scores, status=np.zeros(n, np.int8), text=[""] * n,
                                       prompt_tokens=np.zeros(n, np.int32), new_tokens=np.zeros(n, np.int32),
                                       truncated=np.zeros(n, bool)), attempt=0)
    board = write_leaderboard(tmp_path, VerdictStore(store.path))["boards"]["without_reference"]
    assert board["win_rate_matrix"] == {"models": models, "values": [[None, 100.0, 100.0], [0.0, None, 100.0],
                                                                      [0.0, 0.0, None]]}
    assert [r["model"] for r in board["rows"]] == models and board["rows"][0]["win_rate"] == 100
    ratings = [r["rating"] for r in board["rows"]]
    assert ratings[0] > ratings[1] > ratings[2] and np.mean(ratings) == pytest.approx(1000)
    assert "Win rate of the row model against the column model" in (tmp_path / "leaderboard.md").read_text()
    assert (tmp_path / "leaderboard_win_rate_matrix_without_reference.png").stat().st_size > 0
