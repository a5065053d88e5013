"""``make bench``'s end-to-end rows: the whole default ``make judge`` / ``make evaluate`` against its engine alone.

A run is everything a user waits for: the launcher's start and the run's creation, the shard worker's start (its
imports), the model load, tokenization, the engine, the store writes and the merge. Each repeat runs the command
as ``make`` does (``python -m launch.judge``, a fresh runs directory, so no verdict cache from an earlier run),
then, in this process, the same engine (same settings, same cores, model loaded and warm) judges exactly the
units the run's engine judged (the run's own cache hits excluded), on the token ids the shards gave it, in one
call. Run and engine alternate in every repeat; medians. The ratio run / engine is the cost of everything that
is not the engine, and the phases say where it goes: the launcher's (``create``, ``merge``) from its phase line,
the worker's (``start``: interpreter and imports, ``model``, ``cache``, ``tokenize``, ``engine``, ``store``) from
the progress file of every shard, and ``other`` the rest of the wall time (process spawning, waiting).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from judgelm.judging.phases import PHASES
from judgelm.judging.progress import read_progress
from judgelm.judging.store import VerdictStore
from judgelm.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"judge": "launch.judge", "evaluate": "launch.evaluate"}
_PHASE_LINE = re.compile(r"^phases run: (.*); total", re.M)


def run_command(kind: str, runs_dir: Path, run: str, args: list[str]) -> tuple[float, dict[str, float]]:
    """``make <kind>`` with its defaults (and ``args``) into ``runs_dir``: wall seconds and the launcher's phases."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", COMMANDS[kind], f"runs_dir={runs_dir}", f"run={run}", *args],
                         cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode:
        raise RuntimeError(f"make {kind} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    line = _PHASE_LINE.search(out.stdout)
    phases = {k: float(v.split()[0]) for k, v in (p.split(" ", 1) for p in line.group(1).split(", "))} if line else {}
    return wall, phases


def shard_phases(rd: RunDir, n_shards: int) -> dict[str, float]:
    """Each phase summed over the shards' last attempts (one worker runs them one after the other)."""
    total: dict[str, float] = {}
    for k in range(n_shards):
        p = read_progress(rd.shard_progress(k))
        for name, s in ((p.attempts[-1].phases or {}) if p and p.attempts else {}).items():
            total[name] = total.get(name, 0.0) + s
    return total


def engine_work(rd: RunDir, engine) -> tuple[list[int], list[list[int]]]:
    """The units the run's engine judged (not rejected, not from the cache) and their token ids, as shards make them."""
    from judgelm.judging.config import load_run_config
    from judgelm.judging.shard import prepare_prompts

    cfg, store = load_run_config(rd.root), VerdictStore(rd.store)
    cached = store.cached()
    units, ids = [], []
    for c in range(store.n_chunks):
        prep = prepare_prompts(store, c, engine, cfg)
        for i in np.flatnonzero(~prep.rejected & ~cached[prep.unit]):
            units.append(int(prep.unit[i]))
            ids.append(prep.ids[i])
    return units, ids


def bench_run(kind: str, repeats: int, args: list[str] = ()) -> dict:
    """The default ``make <kind>`` (with ``args``) against its engine alone, interleaved ``repeats`` times;
    medians."""
    from judgelm.inference import make_engine
    from judgelm.judging.config import load_run_config

    runs, engine_s, engine = [], [], None
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        for r in range(repeats):
            runs_dir = Path(tmp) / f"runs{r}"  # fresh: an earlier repeat's verdict cache would judge nothing
            wall, launcher = run_command(kind, runs_dir, "e2e", list(args))
            rd = RunDir(runs_dir / "e2e")
            store = VerdictStore(rd.store)
            shards = shard_phases(rd, int(store.attrs["n_shards"]))
            if engine is None:
                cfg = load_run_config(rd.root)
                engine = make_engine(cfg.model, cfg.engine)
                units, ids = engine_work(rd, engine)
                engine.generate(units[:8], ids[:8])  # warm-up
            t = time.perf_counter()
            engine.generate(units, ids)
            engine_s.append(time.perf_counter() - t)
            runs.append({"wall_s": wall, "launcher": launcher, "shards": shards})
            print(f"    {kind} repeat {r + 1}: run {wall:.1f} s, engine alone {engine_s[-1]:.1f} s", flush=True)
    command = f"make {kind}" + (f' ARGS="{" ".join(args)}"' if args else "")
    return summarize(command, runs, engine_s, len(units), store.n_units)


def summarize(command: str, runs: list[dict], engine_s: list[float], judged: int, units: int) -> dict:
    wall, engine = statistics.median(r["wall_s"] for r in runs), statistics.median(engine_s)
    mid = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]  # the median run's own phases
    phases = {"create": mid["launcher"].get("create", 0.0),
              **{p: mid["shards"].get(p, 0.0) for p in PHASES}, "merge": mid["launcher"].get("merge", 0.0)}
    phases["other"] = max(0.0, mid["wall_s"] - sum(phases.values()))
    return {"command": command, "units": units, "units_judged_by_engine": judged,
            "units_from_cache": units - judged, "run_s": wall, "engine_alone_s": engine, "ratio": wall / engine,
            "runs_s": [r["wall_s"] for r in runs], "engine_alone_runs_s": engine_s,
            "phases_s": {k: round(v, 2) for k, v in phases.items()}}


def e2e_table(rows: list[dict]) -> str:
    names = ["create", *PHASES, "merge", "other"]
    head = ("| command | units (engine) | run s | engine alone s | × | " + " | ".join(names) + " |\n"
            + "|---" * (5 + len(names)) + "|")
    lines = [head]
    for r in rows:
        lines.append(f"| `{r['command']}` | {r['units']} ({r['units_judged_by_engine']}) | {r['run_s']:.1f} | "
                     f"{r['engine_alone_s']:.1f} | {r['ratio']:.2f} | "
                     + " | ".join(f"{r['phases_s'][n]:.1f}" for n in names) + " |")
    return "\n".join(lines)
