"""Confidence from score-token log-probabilities, and calibration (judgelm/scoring/calibration.py), on hand cases."""

import json
import math

import numpy as np
import pytest

from judgelm.data.records import Record
from judgelm.inference.models import load_tokenizer
from judgelm.judging.store import TOP_IDS, TOP_LOGPROBS, ChunkVerdicts, VerdictStore, logprob_arrays
from judgelm.judging.units import plan_units
from judgelm.results.merge import merge_run
from judgelm.scoring.calibration import _Decoder, label_probabilities, reliability, unit_confidence, unit_distributions


@pytest.fixture(scope="module")
def tok(random_judge):
    return load_tokenizer(str(random_judge))


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def candidates(tok, steps):
    """Top-k arrays from ``[[(token text, probability), ...], ...]``, one list per generated position."""
    k = max(len(s) for s in steps)
    top_ids = np.zeros((len(steps), k), dtype=np.int32)
    top_lp = np.full((len(steps), k), np.nan, dtype=np.float16)
    for t, step in enumerate(steps):
        for j, (text, p) in enumerate(step):
            (token,) = ids(tok, text)
            top_ids[t, j], top_lp[t, j] = token, math.log(p)
    return top_ids, top_lp


def test_score_distributions_expected_scores_and_label_confidence(tok):
    # "8 3\n" is the tokens "8", " 3", "\n" for this tokenizer
    top_ids, top_lp = candidates(tok, [[("8", 0.6), ("7", 0.3), ("Assistant", 0.1)],
                                       [(" 3", 0.5), (" 10", 0.25), (" 7", 0.25)], [("\n", 1.0)]])
    (d1, d2), mass = unit_distributions(top_ids, top_lp, "8 3\n", 2, _Decoder(tok))
    assert d1 == pytest.approx({8.0: 2 / 3, 7.0: 1 / 3}, rel=1e-3)  # "Assistant" starts no number: renormalised
    assert d2 == pytest.approx({3.0: 0.5, 10.0: 0.25, 7.0: 0.25}, rel=1e-3)
    assert mass == pytest.approx(0.9, rel=1e-3)
    # answer 1 better: 8 or 7 against 3 (1/2), 8 against 7 (2/3 * 1/4); tie: 7 and 7 (1/3 * 1/4); answer 2: 10 (1/4)
    assert label_probabilities(d1, d2) == pytest.approx((1 / 4, 1 / 12, 2 / 3), rel=1e-3)
    conf = unit_confidence(top_ids[None], top_lp[None], ["8 3\n"], np.array([1]), 2, tok)
    assert conf.available.tolist() == [True]
    assert conf.confidence[0] == pytest.approx(2 / 3, rel=1e-3)
    assert conf.expected[0] == pytest.approx([23 / 3, 5.75], rel=1e-3)


def test_the_emitted_digit_carries_its_continuation(tok):
    # "10 7\n" is "1", "0", " 7", "\n": the emitted "1" stands for 10, an alternative "9" for 9
    top_ids, top_lp = candidates(tok, [[("1", 0.5), ("9", 0.3), ("8", 0.2)], [("0", 1.0)],
                                       [(" 7", 0.8), (" 2", 0.2)], [("\n", 1.0)]])
    (d1, d2), _ = unit_distributions(top_ids, top_lp, "10 7\n", 2, _Decoder(tok))
    assert d1 == pytest.approx({10.0: 0.5, 9.0: 0.3, 8.0: 0.2}, rel=1e-3)
    assert d2 == pytest.approx({7.0: 0.8, 2.0: 0.2}, rel=1e-3)


def test_units_without_a_derivable_confidence(tok):
    decode = _Decoder(tok)
    # the emitted "8" is not among the candidates (sampled outside the top k)
    top_ids, top_lp = candidates(tok, [[("7", 0.6), ("9", 0.4)], [(" 3", 1.0)], [("\n", 1.0)]])
    assert unit_distributions(top_ids, top_lp, "8 3\n", 2, decode) is None
    # a verdict that does not parse has no score positions
    assert unit_distributions(top_ids, top_lp, "Assistant 1", 2, decode) is None
    # single-answer grading reads one number; here " 9" is two tokens, a space and the digit
    top_ids, top_lp = candidates(tok, [[(" ", 1.0)], [("9", 0.75), ("2", 0.25)], [("\n", 1.0)]])
    (d,), _ = unit_distributions(top_ids, top_lp, " 9\n", 1, decode)
    assert d == pytest.approx({9.0: 0.75, 2.0: 0.25}, rel=1e-3)


def test_reliability_curve_and_expected_calibration_error():
    conf = np.array([0.9, 0.9, 0.6, 0.6, 0.3])
    correct = np.array([True, False, True, True, False])
    r = reliability(conf, correct, n_bins=10)
    # bins: 0.9 -> accuracy 1/2 (gap 0.4, weight 2/5), 0.6 -> 1 (gap 0.4, 2/5), 0.3 -> 0 (gap 0.3, 1/5)
    assert r["ece"] == pytest.approx(0.4 * 0.4 + 0.4 * 0.4 + 0.2 * 0.3)
    assert [(b["count"], b["accuracy"]) for b in r["bins"]] == [(1, 0.0), (2, 1.0), (2, 0.5)]
    assert r["mean_confidence"] == pytest.approx(0.66) and r["accuracy"] == pytest.approx(0.6)
    perfect = reliability(np.array([1.0, 1.0, 0.5, 0.5]), np.array([True, True, True, False]))
    assert perfect["ece"] == pytest.approx(0.0)


def test_merge_reports_calibration_when_log_probabilities_were_stored(tmp_path, random_judge, tok):
    recs = [Record(question_id=i, question=f"q{i}", answers=("a", "b"), label=lab) for i, lab in enumerate([1, -1])]
    plan = plan_units(recs)  # both orders: units (r0, o0), (r0, o1), (r1, o0), (r1, o1)
    texts = ["8 3\n", "3 8\n", "8 3\n", "3 8\n"]  # record 0: right in both orders; record 1: wrong in both
    # "3 8\n" is "3", " ", "8", "\n" for this tokenizer; "8 3\n" is one token shorter (padded: never reached)
    steps = {"8 3\n": [[("8", 0.9), ("3", 0.1)], [(" 3", 1.0)], [("\n", 1.0)], [("\n", 1.0)]],
             "3 8\n": [[("3", 0.9), ("8", 0.1)], [(" ", 1.0)], [("8", 1.0)], [("\n", 1.0)]]}
    arrays = [candidates(tok, steps[t]) for t in texts]
    top_ids = np.stack([a[0] for a in arrays])
    top_lp = np.stack([a[1] for a in arrays])
    store = VerdictStore.create(tmp_path / "verdicts.zarr", recs, plan, 2, chunk_units=4, attrs={
        "n_shards": 1, "mode": "pair", "model": str(random_judge)},
        extra_arrays=logprob_arrays(*top_ids.shape[1:]))
    scores = np.array([[float(x) for x in t.split()] for t in texts], dtype=np.float32)
    store.write_chunk(0, ChunkVerdicts(scores=scores, status=np.zeros(4, np.int8), text=texts,
                                       prompt_tokens=np.zeros(4), new_tokens=np.full(4, 3), truncated=np.zeros(4, bool),
                                       extras={TOP_IDS: top_ids, TOP_LOGPROBS: top_lp}), attempt=0)
    cal = merge_run(tmp_path)["groups"]["without_reference"]["calibration"]
    # every verdict has confidence 0.9 (P(s1 = emitted) with s2 certain); half of them are right
    assert cal["units_with_confidence"] == 4 and cal["n"] == 4
    assert cal["mean_confidence"] == pytest.approx(0.9, rel=1e-3) and cal["accuracy"] == 0.5
    assert cal["ece"] == pytest.approx(0.4, rel=1e-3)
    assert cal["agreement_expected_score"] == 0.5
    rows = [json.loads(line) for line in (tmp_path / "confidence.jsonl").read_text().splitlines()]
    assert [(r["question_id"], r["order"], r["verdict"]) for r in rows] == [("0", 0, "8 3"), ("0", 1, "3 8"),
                                                                           ("1", 0, "8 3"), ("1", 1, "3 8")]
    assert rows[0]["confidence"] == pytest.approx(0.9, rel=1e-3)
    assert rows[0]["p_label"] == pytest.approx({"-1": 0.0, "0": 0.1, "1": 0.9}, rel=1e-3, abs=1e-6)
    assert rows[1]["expected_scores"] == pytest.approx([3.5, 8.0], rel=1e-3)
