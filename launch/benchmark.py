"""``make benchmark``: judge a suite of benchmarks with one model in one command and print one leaderboard.

    python -m launch.benchmark model.path=DIR [suite=default|quick] [benchmarks='[pandalm,llmbar]'] [limit=N]
                               [run=NAME] [shards=4] [cluster=local|NAME] [engine.logprobs_topk=5] ...

A suite (``configs/suites/<suite>.yaml``) lists benchmarks; ``benchmarks=`` replaces the list, ``limit=N`` keeps N
records per subset of each. The pairwise benchmarks become one judging run whose shards span all of them, and the
single-answer ones (Prometheus) a second run, both below ``<runs_dir>/<run>/`` and submitted together; shards are
split between the two by their number of units. Each run is an ordinary judging run (``make resubmit
RUN=<run>/pair`` continues one); ``<run>/leaderboard.md`` holds every benchmark's protocol result, and ``make report
RUN=<run>`` rebuilds it with the figures. Every other ``key=value`` is a ``make judge`` setting; score-token
log-probabilities are kept by default (``engine.logprobs_topk=5``) so the merge can report calibration.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from judgelm.config import ConfigError, to_yaml
from judgelm.data.benchmarks import load_dataset
from judgelm.data.benchmarks.suites import load_suite, sources_by_mode
from judgelm.data.records import Loaded
from judgelm.judging.run import PlannedRun, create_run, plan_run
from judgelm.judging.units import plan_units
from judgelm.results.report import BENCHMARK_FILE, write_leaderboard
from launch.cli import run_main
from launch.configs import JudgeLaunchConfig, load_judge_config
from launch.submission import dry_run_text, finish, follow, print_how_to_follow, submit

DEFAULTS = ("engine.logprobs_topk=5",)


@dataclass
class BenchmarkConfig(JudgeLaunchConfig):
    suite: str = "default"
    """A suite in ``configs/suites/``."""
    benchmarks: list[str] = field(default_factory=list)
    """Replaces the suite's list: benchmark names, ``name:ARG`` (``judgelm_val:/path``) or data files."""
    limit: int | None = None
    """Records per subset of every benchmark (0: all); unset takes the suite's."""


def split_shards(total: int, units: dict[str, int]) -> dict[str, int]:
    """``total`` shards shared by runs in proportion to their units (largest remainder), at least one each."""
    n_units = sum(units.values())
    share = {k: max(1, math.floor(total * u / n_units)) for k, u in units.items()}
    for k in sorted(units, key=lambda k: total * units[k] / n_units - share[k], reverse=True):
        if sum(share.values()) >= total:
            break
        share[k] += 1
    return share


def plan_runs(cfg: BenchmarkConfig) -> tuple[list[str], dict[str, PlannedRun]]:
    """The suite's benchmarks, and one planned judging run per prompt mode (each data set loaded once)."""
    suite = load_suite(cfg.suite)
    names = list(cfg.benchmarks) or list(suite.benchmarks)
    limit = suite.limit if cfg.limit is None else cfg.limit
    sources = sources_by_mode(names, limit)
    loaded: dict[str, Loaded] = {mode: load_dataset(spec, cfg.data.skip_invalid) for mode, spec in sources.items()}
    units = {mode: len(plan_units(loaded[mode].records, mode, cfg.prompt.reference, cfg.prompt.orders))
             for mode in sources}
    shards = split_shards(cfg.shards, units)
    runs = {}
    for mode, spec in sources.items():
        sub = JudgeLaunchConfig(**{f.name: copy.deepcopy(getattr(cfg, f.name)) for f in fields(JudgeLaunchConfig)})
        sub.run, sub.data.source, sub.data.limit = f"{cfg.run}/{mode}", spec, 0
        sub.prompt.mode, sub.shards = mode, shards[mode]
        runs[mode] = plan_run(sub, loaded[mode])
    return names, runs


def benchmark(argv: list[str]) -> int:
    started = time.time()
    cfg = load_judge_config(argv, BenchmarkConfig, DEFAULTS, prefix="bench")
    cfg.engine.validate()
    cfg.merge.validate()
    if cfg.dry_run:
        print(dry_run_text(cfg))
        return 0
    parent = Path(cfg.runs_dir).resolve() / cfg.run
    if parent.exists():
        raise ConfigError(f"{parent} already exists: continue its runs with `make resubmit RUN={cfg.run}/pair` (and "
                          f"/single), then rebuild the leaderboard with `make report RUN={cfg.run}`")
    names, planned = plan_runs(cfg)
    parent.mkdir(parents=True)
    try:  # a benchmark directory that exists is one whose runs all exist
        dirs = {mode: create_run(p, to_yaml(p.cfg)) for mode, p in planned.items()}
    except BaseException:
        shutil.rmtree(parent, ignore_errors=True)
        raise
    (parent / BENCHMARK_FILE).write_text(json.dumps({
        "suite": cfg.suite, "benchmarks": names, "model": cfg.model.path,
        "sources": {mode: p.cfg.data.source for mode, p in planned.items()}, "runs": {mode: mode for mode in planned}},
        indent=2))
    everywhere = sum(p.cfg.shards for p in planned.values())  # the runs' local shards share this machine's cores
    subs = {mode: submit(dirs[mode], p.cfg, list(range(p.cfg.shards)), running_here=everywhere)
            for mode, p in planned.items()}
    if cfg.cluster.executor == "slurm":
        for sub in subs.values():
            print_how_to_follow(sub)
        if not cfg.wait:
            print(f"when both runs have merged: make report RUN={cfg.run}")
            return 0
    rc = 0
    for sub in subs.values():
        follow(sub)
        rc |= finish(sub, started)
    if rc == 0:
        print(write_leaderboard(parent), flush=True)
    print(f"benchmark directory: {parent}\nwall time: {time.time() - started:.1f} s", flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    return run_main(benchmark, __doc__, BenchmarkConfig, argv)


if __name__ == "__main__":
    raise SystemExit(main())
