"""Verdict policies chosen at merge time, on a store whose draws are written by hand and checked by hand."""

import json

import numpy as np
import pytest

from judgelm import cli
from judgelm.data.records import Record
from judgelm.data.verdicts import Status
from judgelm.judging.store import NOT_ASKED, ChunkVerdicts, VerdictStore, draw_arrays
from judgelm.judging.units import plan_units
from judgelm.results.merge import merge_run
from judgelm.results.report import write_report
from judgelm.scoring.verdict_policy import choose
from launch import benchmark, judge

N = np.nan
# Four pairs judged in one order, three samples each (sample 0 the primary verdict) and one re-ask:
# unit 0 clear; unit 1's primary failed and its re-ask gave 3 8; unit 2's primary and re-ask both failed.
SAMPLES = np.array([[[8, 3], [2, 7], [9, 1]],
                    [[N, N], [4, 4], [6, 5]],
                    [[N, N], [5, 5], [7, 2]],
                    [[1, 9], [2, 8], [9, 9]]], dtype=np.float32)
RETRY = np.array([[[N, N]], [[3, 8]], [[N, N]], [[N, N]]], dtype=np.float32)
RETRY_STATUS = np.array([[NOT_ASKED], [Status.OK], [Status.PARSE_FAILED], [NOT_ASKED]], dtype=np.int8)
LABELS = [1, -1, 0, 1]


def hand_written_run(tmp_path):
    recs = [Record(question_id=i, question=f"q{i}", answers=("a", "b"), label=lab) for i, lab in enumerate(LABELS)]
    plan = plan_units(recs, "pair", "without", "original")
    store = VerdictStore.create(tmp_path / "verdicts.zarr", recs, plan, 2, chunk_units=4,
                                attrs={"n_shards": 1, "mode": "pair"}, extra_arrays=draw_arrays(2, 3, 1))
    parsed = np.isfinite(SAMPLES).all(axis=2)
    status = np.where(parsed, Status.OK, Status.PARSE_FAILED).astype(np.int8)
    text = np.array([[" ".join(f"{x:g}" for x in s) for s in unit] for unit in SAMPLES], dtype=object)
    store.write_chunk(0, ChunkVerdicts(
        scores=SAMPLES[:, 0], status=status[:, 0], text=list(text[:, 0]), prompt_tokens=np.zeros(4),
        new_tokens=np.zeros(4), truncated=np.zeros(4, bool),
        extras={"sample_scores": SAMPLES, "sample_status": status, "sample_text": text, "retry_scores": RETRY,
                "retry_status": RETRY_STATUS, "retry_text": np.array([[""], ["3 8"], ["?"], [""]], dtype=object)}),
        attempt=0)
    return tmp_path


def test_policies_choose_the_hand_computed_verdicts():
    samples = SAMPLES.copy()
    samples[1, 0] = [3, 8]  # what the re-ask put in place of unit 1's failed primary verdict
    np.testing.assert_allclose(choose("majority", samples), [[8.5, 2], [5, 5], [4.75, 4.75], [1.5, 8.5]])
    np.testing.assert_allclose(choose("mean", samples), [[19 / 3, 11 / 3], [13 / 3, 17 / 3], [6, 3.5], [4, 26 / 3]])
    np.testing.assert_allclose(choose("first_parseable", samples), [[8, 3], [3, 8], [5, 5], [1, 9]])
    np.testing.assert_allclose(choose("primary", samples), samples[:, 0])
    np.testing.assert_allclose(choose("expected", samples, np.array([[6, 4], [N, N], [5, 5.5], [2, 3]])),
                               [[6, 4], [3, 8], [5, 5.5], [2, 3]])
    assert np.isnan(choose("majority", np.full((1, 3, 2), np.nan))).all()  # nothing parsed: a failure
    np.testing.assert_allclose(choose("majority", np.array([[[7], [3], [9]]])), [[7]])  # graded: the median


def test_changing_the_policy_at_merge_changes_the_metrics_as_computed_by_hand(tmp_path, capsys):
    run = hand_written_run(tmp_path)
    # verdict labels per policy (truth 1, -1, 0, 1): primary 1 -1 0* -1, majority 1 0 0 -1, mean 1 -1 1 -1,
    # first_parseable 1 -1 0 -1 (* unit 2 has no parsed primary verdict: a failure, counted as a tie)
    expect = {"primary": (3 / 4, 1 / 4), "majority": (2 / 4, 0.0), "mean": (2 / 4, 0.0),
              "first_parseable": (3 / 4, 0.0)}
    for policy, (agreement, failures) in expect.items():
        m = merge_run(run, policy=policy)
        g = m["groups"]["without_reference"]
        assert (g["agreement"], g["parse_failure_rate"]) == (pytest.approx(agreement), failures), policy
        assert m["verdicts"]["retries"] == {"failures_before": 2, "failure_rate_before": 0.5, "failures_after": 1,
                                            "failure_rate_after": 0.25, "units_re_asked": 2, "re_asks": 2}
        # k = 1 is the primary verdict after re-asks whatever the policy; k = 3 is the policy's
        assert [row["k"] for row in m["verdicts"]["by_k"]] == [1, 3]
        assert m["verdicts"]["by_k"][0]["agreement"] == pytest.approx(3 / 4)
        assert m["verdicts"]["by_k"][1]["agreement"] == pytest.approx(agreement)
    # labels of the samples (unparsed = tie): 1 -1 1 | -1 0 1 | 0 0 1 | -1 -1 0
    assert m["verdicts"]["sample_agreement"]["mean_modal_share"] == pytest.approx(7 / 12)
    assert m["verdicts"]["sample_agreement"]["unanimous_share"] == 0.0
    assert cli.main(["merge", str(run), "--policy", "majority"]) == 0
    assert json.loads((run / "metrics.json").read_text())["verdicts"]["policy"] == "majority"
    assert cli.main(["merge", str(run), "--policy", "expected"]) == 2  # no log-probabilities stored
    assert cli.main(["merge", str(run), "--policy", "vote"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: merge.policy=expected needs score-token log-probabilities")
    assert err[1].startswith("error: merge.policy must be one of primary, majority")


def test_the_report_draws_the_metrics_against_the_number_of_samples(tmp_path):
    run = hand_written_run(tmp_path)
    merge_run(run, policy="majority")
    text = write_report([run], run).read_text()
    assert "![Metrics against samples per unit](figures/samples.png)" in text
    assert "| samples k | agreement |" in text and (run / "figures" / "samples.png").stat().st_size > 0


def test_settings_that_cannot_work_are_refused_in_one_line_before_judging(tmp_path, capsys):
    base = [f"runs_dir={tmp_path}", "model.path=none"]
    assert judge.main([*base, "run=a", "engine.samples=3"]) == 2  # several samples of a greedy judge
    assert benchmark.main([*base, "run=b", "merge.policy=vote"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: engine.samples=3 draws several verdicts per unit, which needs sampling")
    assert err[1].startswith("error: merge.policy must be one of primary, majority")
    assert not list(tmp_path.iterdir())
