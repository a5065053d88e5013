"""``judgelm``: small tools around runs and data files.

    judgelm judgelm-metrics --gt GT.jsonl --seq PRED.jsonl [--rev PRED_REVERSED.jsonl]
    judgelm merge RUN_DIR [--allow-partial] [--policy primary|majority|mean|first_parseable|expected]
    judgelm calibrate FIT_RUN_DIR APPLY_RUN_DIR [--fit-benchmark B] [--apply-benchmark B] [-o OUT_DIR]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys


def cmd_judgelm_metrics(args) -> int:
    from judgelm.scoring.judgelm_files import metrics_from_judgelm_files

    print(json.dumps(metrics_from_judgelm_files(args.gt, args.seq, args.rev), indent=2))
    return 0


def cmd_merge(args) -> int:
    from judgelm.results.merge import IncompleteStore, merge_run
    from judgelm.results.tables import format_table
    from judgelm.rundir import Fault

    try:
        print(format_table(merge_run(args.run_dir, args.allow_partial, args.policy)))
    except (IncompleteStore, Fault, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_calibrate(args) -> int:
    """Fit a temperature on one run's labelled verdicts, apply it to another's: reliability before and after."""
    from pathlib import Path

    from judgelm.results.merge import CONFIDENCE_FILE
    from judgelm.results.report import reliability_figure
    from judgelm.scoring.calibration import read_labelled, transfer

    try:
        fit = read_labelled(Path(args.fit_run) / CONFIDENCE_FILE, args.fit_benchmark)
        probs, labels, truth = read_labelled(Path(args.apply_run) / CONFIDENCE_FILE, args.apply_benchmark)
        out = transfer(fit[0], fit[2], probs, labels, truth)
    except (OSError, ValueError) as e:
        print(f"error: {e} (judge with engine.logprobs_topk=5 on data with ground truth, then merge)", file=sys.stderr)
        return 2
    out_dir = Path(args.output or args.apply_run)
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = {k: getattr(args, k) for k in ("fit_run", "fit_benchmark", "apply_run", "apply_benchmark")}
    (out_dir / "calibration-transfer.json").write_text(json.dumps({**sets, **out}, indent=2) + "\n")
    t = out["temperature"]
    curves = {"groups": {"before (T = 1)": {"calibration": out["before"]},
                         f"after (T = {t:.2f})": {"calibration": out["after"]}}}
    figure = reliability_figure(curves, out_dir / "reliability-transfer.png")
    print(f"temperature {t:.3f} fitted on {out['fit_units']} verdicts; on {out['units']} others ECE "
          f"{100 * out['before']['ece']:.2f} -> {100 * out['after']['ece']:.2f} (figure: {figure})")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="judgelm", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("judgelm-metrics", help="JudgeLM's metrics from JudgeLM's answer files")
    p.add_argument("--gt", required=True, help="ground truth JSONL with 'text' (e.g. judgelm_val_5k_gpt4.jsonl)")
    p.add_argument("--seq", required=True, help="predictions JSONL with 'pred_text', original order")
    p.add_argument("--rev", help="predictions JSONL with 'pred_text', answers reversed")
    p.set_defaults(fn=cmd_judgelm_metrics)
    p = sub.add_parser("merge", help="(re)compute a run's metrics from its store")
    p.add_argument("run_dir")
    p.add_argument("--allow-partial", action="store_true")
    p.add_argument("--policy", help="how a unit's stored draws become its verdict (default: the run's merge.policy); "
                   "see judgelm.scoring.verdict_policy")
    p.set_defaults(fn=cmd_merge)
    p = sub.add_parser("calibrate", help="fit a confidence temperature on one run, apply it to another")
    p.add_argument("fit_run", help="run directory whose confidence.jsonl has labelled verdicts to fit on")
    p.add_argument("apply_run", help="run directory to apply the temperature to (may be the same run)")
    p.add_argument("--fit-benchmark", default="", help="fit only on this benchmark's verdicts")
    p.add_argument("--apply-benchmark", default="", help="apply only to this benchmark's verdicts")
    p.add_argument("-o", "--output", help="where calibration-transfer.json and the figure go (default: apply_run)")
    p.set_defaults(fn=cmd_calibrate)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `judgelm merge ... | head` should just stop
    try:
        return args.fn(args)
    except (ValueError, OSError) as e:  # bad data or a missing file: the message names it, a traceback would not help
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
