"""``make status RUN=…``: one table per run (judging or generation) from one ``sacct`` call plus the store.

    python -m launch.status run=NAME [runs_dir=runs] [watch=SECONDS] [all=true]

Per shard: the Slurm state and exit code of its latest job, the node, units done/total (from the store, the
only truth about what is done), rate, ETA and start-up (process start, imports and model load: from the shard's
progress file), and attempts. Works while the
run is going and after; local runs show the same table without Slurm columns. Past 16 shards, finished shards
are left out of the table (``all=true`` shows them) and counted in the summary line. Every chunk is verified
against its checksum: damaged chunks are not counted as done, and are listed under the table with the command
that repairs them; a shard whose last attempt failed says why.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from judgelm.config import ConfigError, load_config
from judgelm.judging.progress import read_progress
from judgelm.judging.store import ChunkLayout, Damage
from judgelm.results.tables import data_line
from judgelm.rundir import RunDir
from launch.cli import run_main
from launch.sacct import sacct
from launch.submission import kind_of, latest_jobs, read_submissions


def shard_done_counts(store: ChunkLayout, n_shards: int, damage: list[Damage] = ()) -> list[tuple[int, int]]:
    """(units done, units owned) per shard, from the store's ``done`` marks; units of damaged chunks are not done."""
    done = store.readable_done()
    for d in damage:
        if d.judge == getattr(store, "prefix", None):
            done[d.start:d.stop] = False
    return [(int(np.count_nonzero(done[sl])), sl.stop - sl.start)
            for sl in (store.shard_slice(k, n_shards) for k in range(n_shards))]


def _alive(pid: str) -> bool:
    """A local shard's job id is its process id."""
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


def startup(p) -> str:
    """The latest attempt's start-up: process start, imports, model load and cache (``judgelm.judging.phases``)."""
    phases = (p.attempts[-1].phases or {}) if p and p.attempts else {}
    return f"{sum(phases.get(k, 0.0) for k in ('start', 'model', 'cache')):.1f} s" if "start" in phases else "—"


def status_table(rd: RunDir, show_all: bool = True) -> str:
    """A judging or generation run's table; an evaluation whose answers are generated first (``launch/dag.py``)
    gets one per model's generation run, then its judging run's (or what the judging jobs wait for)."""
    if rd.generated.is_dir():
        from judgelm.generation.evaluation import generation_runs
        from launch.dag_status import dag_status

        parts = [f"## answers of {r.name} ({r.root})\n{run_table(r, show_all)}" for r in generation_runs(rd)]
        judging = run_table(rd, show_all) if rd.store.exists() else dag_status(rd)
        return "\n\n".join(parts + [f"## judging\n{judging}"])
    return run_table(rd, show_all)


def run_table(rd: RunDir, show_all: bool = True) -> str:
    store = kind_of(rd).open_store(rd)
    n_shards = int(store.attrs["n_shards"])
    subs = read_submissions(rd)
    jobs, merge = latest_jobs(subs)
    slurm = any(s.get("executor") == "slurm" for s in subs)
    warning = ""
    try:
        rows = sacct(list(jobs.values()) + ([merge] if merge else [])) if slurm else {}
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:  # slurmdbd trouble: the store still answers
        rows, warning = {}, f"(no Slurm states: {e})"
    damage = store.verify()
    counts = shard_done_counts(store, n_shards, damage)
    damaged = {k: sum(1 for d in damage if d.shard == k) for k in range(n_shards)}
    header = ["shard", "job", "state", "exit", "node", "units", "done", "rate/s", "ETA", "start-up", "attempts"]
    table = [header]
    states: dict[str, int] = {}
    for k in range(n_shards):
        done, total = counts[k]
        p = read_progress(rd.shard_progress(k))
        jid = jobs.get(k, "")
        row = rows.get(jid, {})
        if row:
            state = row["State"].split(" ")[0]
        elif p is not None and p.attempts:
            state = p.attempts[-1].state.upper()
        else:
            state = "PENDING" if jid else "NOT SUBMITTED"
        if done == total and total:
            state = state if state == "COMPLETED" else f"{state} (done)"
        if damaged[k]:
            state = f"{state}, {damaged[k]} DAMAGED"
        states[state] = states.get(state, 0) + 1
        # A rate only while the shard is really running: its last attempt may have died without a word.
        running = state == "RUNNING" if row else (not slurm and state == "RUNNING" and _alive(p.attempts[-1].job_id))
        rate = p.rate if running and p and p.attempts else 0.0
        eta = f"{(total - done) / rate:.0f} s" if rate > 0 and done < total else "—"
        if not show_all and n_shards > 16 and done == total:
            continue
        table.append([str(k), jid or "—", state, row.get("ExitCode", "—"), row.get("NodeList", "—") or "—",
                      f"{done}/{total}", f"{100 * done / max(total, 1):.1f} %", f"{rate:.1f}" if rate else "—",
                      eta, startup(p), str(len(p.attempts)) if p else "0"])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    done_all = sum(d for d, _ in counts)
    model = f"model {store.attrs['model_id']}, " if store.attrs.get("model_id") else ""  # a generation run
    summary = (f"run {store.attrs.get('run', rd.name)} ({model}cfg {store.attrs.get('config_hash')}): "
               f"{done_all}/{store.n_units} units "
               f"({100 * done_all / max(store.n_units, 1):.1f} %); shards: "
               + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    if merge:
        m = rows.get(merge, {})
        summary += f"; merge job {merge}: {m.get('State', 'unknown')}"
    if rd.metrics.exists():
        summary += f"; metrics: {rd.table}"
    notes = data_line(store.attrs)
    return "\n".join(lines + [summary] + ([f"data: {notes}"] if notes else []) + failures(rd, n_shards, counts)
                     + damage_lines(damage, rd.name) + ([warning] if warning else []))


def failures(rd: RunDir, n_shards: int, counts: list[tuple[int, int]]) -> list[str]:
    """Why each unfinished shard's last attempt failed, when it said."""
    out = []
    for k in range(n_shards):
        p = read_progress(rd.shard_progress(k))
        if counts[k][0] < counts[k][1] and p and p.attempts and p.attempts[-1].state == "failed" \
                and p.attempts[-1].error:
            out.append(f"shard {k} failed: {p.attempts[-1].error}")
    return out


def damage_lines(damage: list[Damage], run: str, shown: int = 8) -> list[str]:
    if not damage:
        return []
    lines = [f"damaged: {d}" for d in damage[:shown]]
    if len(damage) > shown:
        lines.append(f"damaged: and {len(damage) - shown} more chunks (make verify RUN={run} lists them all)")
    fix = ("the run's inputs are damaged: create the run again" if any(d.judge is None for d in damage)
           else f"make resubmit RUN={run} re-judges exactly the damaged units")
    return lines + [f"{len(damage)} damaged chunk{'s' if len(damage) > 1 else ''}: {fix}"]


@dataclass
class StatusConfig:
    run: str = ""
    """The run to show."""
    runs_dir: str = "runs"
    """Where the run directory is."""
    watch: float = 0
    """Refresh every N seconds (one sacct call each); 0 prints once."""
    all: bool = False
    """List every shard, also past 16 shards the finished ones."""


def status(argv: list[str]) -> int:
    cfg = load_config(StatusConfig, None, argv)
    rd = RunDir.existing(cfg.runs_dir, cfg.run)
    if not (rd.store.exists() or rd.answer_store.exists() or rd.generated.is_dir()):
        raise ConfigError(f"{rd.root} is not a run (no verdict or answer store)")
    while True:
        print(status_table(rd, cfg.all), flush=True)
        if not cfg.watch:
            return 0
        time.sleep(cfg.watch)
        print()


def main(argv: list[str] | None = None) -> int:
    return run_main(status, __doc__, StatusConfig, argv)


if __name__ == "__main__":
    raise SystemExit(main())
