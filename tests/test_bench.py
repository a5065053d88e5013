"""``make bench`` end to end on a small setting: every part runs and writes what the docs quote into bench.json.
Nothing here is a timing assertion: the figures are reported, not tested."""

import json

import pytest

from launch import bench


@pytest.mark.slow
def test_bench_writes_the_end_to_end_engine_generation_and_merge_figures(tmp_path, capsys):
    rc = bench.main(["models=[tiny]", "pairs=1", "reference_pairs=1", "instructions=1", "questions=2",
                     "generate_new_tokens=8", "full_new_tokens=8", "repeats=1", "merge_units=200",
                     "merge_scale=[3000]", "cache_entries=2000", "e2e=[judge]", "e2e_repeats=1",
                     "e2e_args=[data.limit=6]",
                     f"runs_dir={tmp_path}"])
    assert rc == 0
    out = capsys.readouterr().out
    [path] = tmp_path.glob("bench-*/bench.json")
    report = json.loads(path.read_text())
    [e2e] = report["end_to_end"]
    assert e2e["command"] == 'make judge ARGS="data.limit=6"' and e2e["units"] == 12
    assert e2e["run_s"] > 0 and e2e["engine_alone_s"] > 0 and e2e["ratio"] == e2e["run_s"] / e2e["engine_alone_s"]
    assert set(e2e["phases_s"]) == {"create", "start", "model", "cache", "tokenize", "engine", "store", "merge",
                                    "other"}
    assert e2e["phases_s"]["start"] > 0 and e2e["phases_s"]["engine"] > 0
    assert "| `make judge ARGS=\"data.limit=6\"` | 12 (" in out
    rows = {(r["workload"], r["mode"]) for r in report["engine"]}
    assert rows == {("pandalm", "fast"), ("pandalm", "full"), ("model-eval", "fast"), ("model-eval", "full"),
                    ("generation", "generate")}
    for r in report["engine"]:
        assert r["hf_units_per_s"] > 0 and r["hf_shared_units_per_cpu_s"] > 0
    [scale] = report["merge_scale"]
    assert scale["units"] == 3000 and scale["merge_s"] > 0 and scale["merge_memory_mb"] >= 0
    assert report["merge"]["same_metrics"]
    assert report["merge"]["merge_s_without_checksums"] > 0 and report["merge"]["verify_s"] > 0
    assert report["cache"]["entries"] == 2000 and report["cache"]["open_s"] > 0
