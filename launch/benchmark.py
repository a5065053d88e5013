"""``make benchmark``: judge a suite of benchmarks with one model in one command and print one leaderboard.

    python -m launch.benchmark model.path=DIR [suite=default|quick] [benchmarks='[pandalm,llmbar]'] [limit=N]
                               [run=NAME] [shards=4] [cluster=local|NAME] [engine.logprobs_topk=5] ...

A suite (``configs/suites/<suite>.yaml``) lists benchmarks; ``benchmarks=`` replaces the list, ``limit=N`` keeps N
records per subset of each. The pairwise benchmarks become one judging run whose shards span all of them, and the
single-answer ones (Prometheus) a second run, both below ``<runs_dir>/<run>/`` and submitted together; shards are
split between the two by their number of units. Each run is an ordinary judging run (``make resubmit
RUN=<run>/pair`` continues one); ``<run>/leaderboard.md`` holds every benchmark's protocol result, and ``make report
RUN=<runs_dir>/<run>`` rebuilds it with the figures. Every other ``key=value`` is a ``make judge`` setting; score-token
log-probabilities are kept by default (``engine.logprobs_topk=5``) so the merge can report calibration.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

from judgelm.benchmarks import load_dataset
from judgelm.benchmarks.suites import load_suite, sources_by_mode
from judgelm.config import CONFIG_DIR, load_config
from judgelm.report import BENCHMARK_FILE, write_leaderboard
from judgelm.units import plan_units
from launch.judge import JudgeLaunchConfig, create_run, follow, print_how_to_follow, report, submit
from launch.tasks import setup_logging

DEFAULTS = ("engine.logprobs_topk=5",)


@dataclass
class BenchmarkConfig(JudgeLaunchConfig):
    suite: str = "default"
    """A suite in ``configs/suites/``."""
    benchmarks: list[str] = field(default_factory=list)
    """Replaces the suite's list: benchmark names, ``name:ARG`` (``judgelm_val:/path``) or data files."""
    limit: Optional[int] = None
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


def plan_runs(cfg: BenchmarkConfig) -> tuple[list[str], dict[str, JudgeLaunchConfig]]:
    """The suite's benchmarks, and one judging-run config per prompt mode."""
    suite = load_suite(cfg.suite)
    names = list(cfg.benchmarks) or list(suite.benchmarks)
    limit = suite.limit if cfg.limit is None else cfg.limit
    sources = sources_by_mode(names, limit)
    units = {mode: len(plan_units(load_dataset(spec, cfg.data.skip_invalid).records, mode, cfg.prompt.reference,
                                  cfg.prompt.orders)) for mode, spec in sources.items()}
    shards = split_shards(cfg.shards, units)
    runs = {}
    for mode, spec in sources.items():
        sub = JudgeLaunchConfig(**{f.name: copy.deepcopy(getattr(cfg, f.name)) for f in fields(JudgeLaunchConfig)})
        sub.run, sub.data.source, sub.data.limit = f"{cfg.run}/{mode}", spec, 0
        sub.prompt.mode, sub.shards = mode, shards[mode]
        runs[mode] = sub
    return names, runs


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    started = time.time()
    cfg = load_config(BenchmarkConfig, CONFIG_DIR / "judge.yaml",
                      [*DEFAULTS, *(argv if argv is not None else sys.argv[1:])], groups=("cluster",))
    try:  # bad settings: one line, before anything is created
        cfg.engine.validate()
        cfg.merge.validate()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg.run = cfg.run or time.strftime("bench-%Y%m%d-%H%M%S")
    parent = Path(cfg.runs_dir).resolve() / cfg.run
    if parent.exists():
        raise SystemExit(f"{parent} already exists: continue its runs with `make resubmit RUN={cfg.run}/pair` (and "
                         f"/single), then rebuild the leaderboard with `make report RUN={parent}`")
    try:
        names, runs = plan_runs(cfg)
        parent.mkdir(parents=True)
        (parent / BENCHMARK_FILE).write_text(json.dumps({
            "suite": cfg.suite, "benchmarks": names, "model": cfg.model.path,
            "sources": {mode: c.data.source for mode, c in runs.items()}, "runs": {mode: mode for mode in runs}},
            indent=2))
        dirs = {mode: create_run(c) for mode, c in runs.items()}
    except (ValueError, FileNotFoundError) as e:  # bad input: say what and where, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    everywhere = sum(c.shards for c in runs.values())  # the runs' local shards share this machine's cores
    subs = {mode: submit(dirs[mode], c, list(range(c.shards)), running_here=everywhere) for mode, c in runs.items()}
    if cfg.cluster.executor == "slurm":
        for mode in runs:
            print_how_to_follow(subs[mode], dirs[mode])
        if not cfg.wait:
            print(f"when both runs have merged: make report RUN={parent}")
            return 0
    rc = 0
    for mode, c in runs.items():
        follow(subs[mode], dirs[mode], c.shards, started)
        rc |= report(subs[mode], dirs[mode], c, started)
    if rc == 0:
        print(write_leaderboard(parent), flush=True)
    print(f"benchmark directory: {parent}\nwall time: {time.time() - started:.1f} s", flush=True)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
