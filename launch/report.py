"""``make report RUN=…``: ``report.md`` with PNG figures for a run, a benchmark run, or several side by side.

    python -m launch.report RUN [RUN ...] [--out DIR] [--runs-dir runs]

Each RUN is a run directory (judged or imported) or a benchmark directory (``make benchmark``), given as a path or
as a name under ``--runs-dir``.
One RUN writes into its own directory (a benchmark directory also gets its leaderboard rebuilt); several write a
comparison into ``--out`` (default ``runs/compare-<names>``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from judgelm.report import BENCHMARK_FILE, write_leaderboard, write_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="launch.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--runs-dir", type=Path, default=Path("runs"))
    args = ap.parse_args(argv)
    args.runs = [run if run.exists() else args.runs_dir / run for run in args.runs]
    for run in args.runs:
        if (run / BENCHMARK_FILE).is_file():
            write_leaderboard(run)
    out = args.out or (args.runs[0] if len(args.runs) == 1
                       else args.runs[0].parent / ("compare-" + "-".join(r.name for r in args.runs)))
    path = write_report(args.runs, out)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
