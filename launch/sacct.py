"""One batched ``sacct`` call for every job of a run (slurmdbd load is what operators complain about first)."""

from __future__ import annotations

import re
import shutil
import subprocess

FIELDS = ("JobID", "JobName", "State", "ExitCode", "NodeList", "Elapsed", "Comment")
# States of a job that may still run (and write): a second job on the same run must wait for these.
ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "SUSPENDED", "CONFIGURING", "COMPLETING", "RESIZING")
_ARRAY_RANGE = re.compile(r"^(\d+)_\[([^\]]+)\]$")


def expand_array_id(job_id: str) -> list[str]:
    """``123_[0-3,7%2]`` (how sacct shows array tasks that have not started) into ``123_0`` ... ``123_7``."""
    m = _ARRAY_RANGE.match(job_id)
    if not m:
        return [job_id]
    out = []
    for part in m.group(2).split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        out += [f"{m.group(1)}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def sacct(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """Allocation-level rows (``-X``) keyed by job id (``123_4`` for array tasks); empty without sacct."""
    ids = sorted({j.split("_")[0] for j in job_ids if j})
    if not ids or shutil.which("sacct") is None:
        return {}
    proc = subprocess.run(["sacct", "-X", "-P", "-n", "-j", ",".join(ids), "-o", ",".join(FIELDS)],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"sacct failed: {proc.stderr.strip()}")
    rows: dict[str, dict[str, str]] = {}
    for line in proc.stdout.splitlines():
        parts = line.split("|", len(FIELDS) - 1)
        if len(parts) != len(FIELDS):
            continue
        row = dict(zip(FIELDS, parts))
        for jid in expand_array_id(row["JobID"]):
            rows[jid] = {**row, "JobID": jid}
    return rows


def active(job_ids: list[str]) -> list[str]:
    """The jobs among ``job_ids`` that are queued or running, from slurmctld itself (one ``squeue`` call): sacct
    lags it by a second or two, and a job that another ``make resubmit`` submitted a moment ago must count. Falls
    back to sacct without squeue."""
    ids = sorted({j.split("_")[0] for j in job_ids if j})
    if not ids:
        return []
    if shutil.which("squeue") is not None:
        proc = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(ids)], capture_output=True,
                              text=True, timeout=60)
        # squeue refuses a list whose jobs have all left slurmctld's memory: then none of them is active
        if proc.returncode == 0 or "Invalid job id" in proc.stderr:
            states = dict(line.split("|", 1) for line in proc.stdout.splitlines() if "|" in line)
            return [j for j in job_ids if states.get(j, "") in ACTIVE]
    rows = sacct(job_ids)
    return [j for j in job_ids if rows.get(j, {}).get("State", "").split(" ")[0] in ACTIVE]


def pending_reasons(job_ids: list[str]) -> dict[str, str]:
    """Why each pending job among ``job_ids`` waits (squeue's reason: ``Dependency``, ``DependencyNeverSatisfied``,
    ...), from one squeue call; jobs that are not pending are left out."""
    ids = sorted({j for j in job_ids if j})
    if not ids or shutil.which("squeue") is None:
        return {}
    # All pending jobs, filtered here: squeue -j fails whole on an id it no longer knows.
    proc = subprocess.run(["squeue", "-h", "-t", "PD", "-o", "%i|%r"], capture_output=True, text=True, timeout=60)
    rows = {}
    for line in proc.stdout.splitlines():
        jid, _, reason = line.partition("|")
        for one in expand_array_id(jid):
            rows[one] = rows[one.split("_")[0]] = reason
    return {j: rows[j] for j in ids if j in rows}


def queued(job_ids: list[str]) -> set[str]:
    """The jobs among ``job_ids`` that squeue still lists (pending, running, completing), from one call. An array
    task cancelled before it started is in neither squeue nor sacct's allocations."""
    ids = {j for j in job_ids if j}
    if not ids or shutil.which("squeue") is None:
        return set()
    proc = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=60)
    listed = {one for line in proc.stdout.split() for one in expand_array_id(line)}
    return {j for j in ids if j in listed or j.split("_")[0] in listed}
