"""`make benchmark` end to end with a random-weight judge on one record per subset, and `make report` on its output
and on imported runs: files exist, figures are real PNGs, the leaderboard covers every benchmark of the suite."""

import json
import re

import numpy as np
import pytest

from judgelm.data.benchmarks import DATA_DIR
from judgelm.data.benchmarks.suites import load_suite
from judgelm.results.merge import TINY_NOTE
from judgelm.results.report import judged_runs, write_report
from launch import benchmark, import_verdicts
from launch import report as report_cli
from launch.configs import saved_judge_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory, random_judge):
    runs = tmp_path_factory.mktemp("runs")
    rc = benchmark.main([f"model.path={random_judge}", "suite=quick", "limit=1", "run=bench", f"runs_dir={runs}",
                         "shards=3", "cluster.executor=debug", "engine.max_prompt_tokens=2048"])
    assert rc == 0
    return runs / "bench"


def assert_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_benchmark_run_covers_every_benchmark_of_the_suite(bench_dir, capsys):
    spec = json.loads((bench_dir / "benchmark.json").read_text())
    assert spec["sources"]["single"] == "prometheus@1" and set(spec["runs"]) == {"pair", "single"}
    board = json.loads((bench_dir / "leaderboard.json").read_text())
    assert {r["benchmark"] for r in board["rows"]} == set(load_suite("quick").benchmarks)
    subsets = {(r["benchmark"], r["subset"]) for r in board["rows"]}
    assert {("llmbar", "Adversarial (mean of subsets)"), ("rewardbench", "score (mean of sections)"),
            ("judgebench", "gpt-4o"), ("prometheus", "vicuna")} <= subsets
    assert board["note"] == TINY_NOTE and TINY_NOTE in (bench_dir / "leaderboard.md").read_text()
    assert [r["benchmark"] for r in board["rows"]][0] == "pandalm"  # the suite's order
    for run in judged_runs(bench_dir):
        m = run.metrics()
        assert m["complete"] and m["mode"] == run.name
        assert saved_judge_config(run.dir, []).prompt.mode == run.name  # `make resubmit` can read every sub-run
    pair = json.loads((bench_dir / "pair" / "metrics.json").read_text())
    # shards across all pairwise benchmarks: 1 pandalm + 5 llmbar + 1 mtbench + 2 judgebench + 23 rewardbench pairs
    assert pair["records"] == 32 and pair["units"] == 64
    # log-probabilities are kept by default, so the merge derives confidence over every judged unit
    assert pair["groups"]["without_reference"]["calibration"]["units"] == 64
    assert (bench_dir / "pair" / "confidence.jsonl").exists()


def test_report_for_a_benchmark_run(bench_dir):
    assert report_cli.main([f"runs=[{bench_dir}]"]) == 0
    text = (bench_dir / "report.md").read_text()
    figures = re.findall(r"\]\(figures/([^)]+)\)", text)
    assert {"pair-confusion.png", "pair-scores.png", "pair-subsets.png", "pair-position_bias.png",
            "single-scores.png", "single-subsets.png"} <= set(figures)
    for name in figures:
        assert_png(bench_dir / "figures" / name)
    assert TINY_NOTE in text and "| rewardbench | Chat Hard |" in text


def test_comparison_of_imported_runs_and_a_benchmark(tmp_path, bench_dir):
    for name in ("gpt-3.5-turbo-testset-v1", "pandalm-7b-testset-v1"):
        assert import_verdicts.main(["format=pandalm", "data=pandalm", f"runs_dir={tmp_path}", f"run={name}",
                                     f"verdicts={DATA_DIR / 'pandalm' / (name + '.json')}"]) == 0
    out = tmp_path / "cmp"
    path = write_report([tmp_path / "gpt-3.5-turbo-testset-v1", tmp_path / "pandalm-7b-testset-v1", bench_dir], out)
    text = path.read_text()
    line = next(x for x in text.splitlines() if x.startswith("| pandalm | all | without |"))
    assert "| 71.07 | 66.77 |" in line  # the imported runs side by side, then the benchmark run
    assert f"> bench: {TINY_NOTE}" in text and "> gpt-3.5" not in text  # only the tiny judge is flagged
    assert_png(out / "figures" / "comparison.png")
    assert_png(out / "figures" / "gpt-3.5-turbo-testset-v1-confusion.png")
    cm = np.array(json.loads((tmp_path / "gpt-3.5-turbo-testset-v1" / "metrics.json").read_text())
                  ["groups"]["without_reference"]["confusion"])
    assert cm.sum() == 999 and np.trace(cm) == 710  # 71.07 % of 999


def test_shards_are_shared_by_units_with_at_least_one_per_run():
    assert benchmark.split_shards(4, {"pair": 10446, "single": 1280}) == {"pair": 3, "single": 1}
    assert benchmark.split_shards(16, {"pair": 10446, "single": 1280}) == {"pair": 14, "single": 2}
    assert benchmark.split_shards(1, {"pair": 10, "single": 10}) == {"pair": 1, "single": 1}
