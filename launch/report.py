"""``make report RUN=…``: ``report.md`` with PNG figures for a run, a benchmark run, or several side by side.

    python -m launch.report runs='[RUN, ...]' [out=DIR] [runs_dir=runs]

Each RUN is a run directory (judged or imported) or a benchmark directory (``make benchmark``), given as a name
under ``runs_dir`` or an absolute path. One RUN writes into its own directory (a benchmark directory also gets its
leaderboard rebuilt); several write a comparison into ``out`` (default ``runs/compare-<names>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from judgelm.config import ConfigError, load_config
from judgelm.results.report import BENCHMARK_FILE, write_leaderboard, write_report
from judgelm.rundir import RunDir
from launch.cli import run_main


@dataclass
class ReportConfig:
    runs: list[str] = field(default_factory=list)
    """The runs to report on (``make report RUN="a b"``)."""
    out: str = ""
    """Where a comparison of several runs goes; empty: ``<runs_dir>/compare-<names>``."""
    runs_dir: str = "runs"
    """Where run directories are."""


def report(argv: list[str]) -> int:
    cfg = load_config(ReportConfig, None, argv)
    if not cfg.runs:
        raise ConfigError("which run? give RUN=NAME (several: RUN=\"a b\")")
    runs = [RunDir.existing(cfg.runs_dir, r).root for r in cfg.runs]
    for run in runs:
        if (run / BENCHMARK_FILE).is_file():
            write_leaderboard(run)
    out = Path(cfg.out) if cfg.out else (runs[0] if len(runs) == 1
                                         else runs[0].parent / ("compare-" + "-".join(r.name for r in runs)))
    print(f"report: {write_report(runs, out)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(report, __doc__, ReportConfig, argv)


if __name__ == "__main__":
    raise SystemExit(main())
