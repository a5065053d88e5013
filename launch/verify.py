"""``make verify RUN=…``: check a whole run without merging it.

    python -m launch.verify run=NAME [runs_dir=runs]

Reads every chunk of the run's store (inputs, unit plan, the verdicts of every judge) and checks it against the
checksum written with it, and that every committed chunk still has its files; then that ``metrics.json`` (when the
run has one) is whole. Prints one line per damaged chunk (array, chunk, units, the shard that owns it, what is
wrong) and the command that repairs them, and exits with 1; exits with 0 and one summary line when nothing is
wrong. Nothing is written, merged or submitted.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from judgelm.config import ConfigError, load_config
from judgelm.judging.store import DamagedStore, VerdictStore
from judgelm.rundir import RunDir
from launch.cli import run_main


@dataclass
class VerifyConfig:
    run: str = ""
    """The run to check."""
    runs_dir: str = "runs"
    """Where the run directory is."""


def verify(argv: list[str]) -> int:
    cfg = load_config(VerifyConfig, None, argv)
    rd = RunDir.existing(cfg.runs_dir, cfg.run)
    if not rd.store.exists():
        raise ConfigError(f"{rd.root} is not a judging run (no verdict store)")
    store = VerdictStore(rd.store)
    damage = store.verify()
    for d in damage:
        print(f"damaged: {d}")
    problems = len(damage)
    if rd.metrics.exists():
        try:
            json.loads(rd.metrics.read_text())
        except ValueError as e:
            print(f"damaged: {rd.metrics}: not valid JSON ({e}); make resubmit RUN={cfg.run} merges again")
            problems += 1
    if problems:
        if damage:
            print(f"error: {DamagedStore(store.path, damage, cfg.run)}", file=sys.stderr)
        return 1
    done = int(store.done().sum())
    how = ("every chunk checked against its CRC32C checksum and every committed chunk's files present"
           if store.checksummed else "every chunk decoded (a store made before checksums: no checksums to check)")
    print(f"run {cfg.run}: intact: {store.n_chunks} chunks, {done}/{store.n_units} units judged; {how}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(verify, __doc__, VerifyConfig, argv)


if __name__ == "__main__":
    raise SystemExit(main())
