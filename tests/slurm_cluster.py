"""The ``slurm_cluster`` pytest fixture: the project's real single-node Slurm cluster for tests.

The cluster itself is ``slurm/start-cluster.sh`` (see ``slurm/README.md``). The fixture:

* reuses a cluster that already answers ``sinfo`` (CI starts one before pytest; developers keep one
  running between test runs), else starts one with ``slurm/start-cluster.sh``;
* skips the requesting tests when no cluster can be had (not root, no apt, ...), unless
  ``JUDGELM_REQUIRE_SLURM=1`` (CI), where that is an error instead of a silent skip;
* exports ``SLURM_CONF`` into ``os.environ`` so that sbatch/sacct and submitit find the cluster;
* never stops the cluster: whoever started it stops it (``slurm/stop-cluster.sh``), so repeated
  test runs during development do not pay for a start each time.

Use it from a conftest with ``pytest_plugins = ["tests.slurm_cluster"]`` (or import the fixture).
The sacct helpers are plain functions too, for code that does not go through the fixture.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
START_SCRIPT = REPO_ROOT / "slurm" / "start-cluster.sh"
STOP_SCRIPT = REPO_ROOT / "slurm" / "stop-cluster.sh"
DEFAULT_STATE_DIR = Path("/var/lib/judgelm-slurm")
REQUIRE_ENV = "JUDGELM_REQUIRE_SLURM"

# States after which a job never changes again. REQUEUED, PENDING, RUNNING, SUSPENDED, COMPLETING
# are not terminal. sacct may append detail ("CANCELLED by 0"): compare the first word only.
TERMINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
    "BOOT_FAIL", "DEADLINE",
})
DEFAULT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Start", "End")

T = TypeVar("T")


# ------------------------------------------------------------------------------------ sacct helpers
def _job_id_list(job_ids: str | int | Iterable[str | int]) -> str:
    if isinstance(job_ids, (str, int)):
        return str(job_ids)
    ids = [str(j) for j in job_ids]
    if not ids:
        raise ValueError("no job ids given")
    return ",".join(ids)


def sacct(job_ids: str | int | Iterable[str | int], fields: str | Sequence[str] = DEFAULT_FIELDS, *,
          allocations: bool = True, duplicates: bool = False) -> list[dict[str, str]]:
    """One ``sacct --parsable2 --noheader -j IDS -o FIELDS`` call, as one dict per line.

    ``allocations`` (``-X``) leaves out the ``.batch``/``.extern`` step lines; ``duplicates`` (``-D``)
    shows every attempt of a requeued job instead of only the last one. An array job id lists all
    of its tasks (``123_0``, ``123_1``, ...). The keys are the field names as given. sacct lags
    slurmctld by a second or two, so a job that just ended may still look RUNNING, or be missing:
    use :func:`wait_sacct` for anything that must have happened.
    """
    names = [f.strip() for f in (fields.split(",") if isinstance(fields, str) else fields) if f.strip()]
    cmd = ["sacct", "--parsable2", "--noheader", "-j", _job_id_list(job_ids), "-o", ",".join(names)]
    if allocations:
        cmd.append("-X")
    if duplicates:
        cmd.append("-D")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    # sacct accepts "JobName%30" but prints no widths with --parsable2: key by the bare name
    keys = [n.split("%", 1)[0] for n in names]
    return [dict(zip(keys, line.split("|"))) for line in proc.stdout.splitlines() if line]


def wait_sacct(predicate: Callable[..., T], timeout: float = 30.0, *,
               job_ids: str | int | Iterable[str | int] | None = None,
               fields: str | Sequence[str] = DEFAULT_FIELDS, allocations: bool = True,
               duplicates: bool = False, interval: float = 0.5) -> Any:
    """Poll until ``predicate`` holds; slurmdbd is fed asynchronously, so sacct lags by 1-2 s.

    Without ``job_ids``: ``predicate()`` is polled and its first truthy result is returned.
    With ``job_ids``: every poll runs :func:`sacct` once and ``predicate(rows)`` decides; the
    satisfying rows are returned. Raises AssertionError (with the last rows) after ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    job_ids = job_ids if job_ids is None or isinstance(job_ids, (str, int)) else list(job_ids)
    while True:
        if job_ids is None:
            last: Any = predicate()
            if last:
                return last
        else:
            last = sacct(job_ids, fields, allocations=allocations, duplicates=duplicates)
            if predicate(last):
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"sacct condition not met after {timeout:.0f}s; last: {last!r}")
        time.sleep(interval)


def is_terminal(state: str) -> bool:
    """True for a sacct State after which the job never changes (``CANCELLED by 0`` included)."""
    return state.split(" ", 1)[0] in TERMINAL_STATES


def wait_job(job_id: str | int, timeout: float = 120.0) -> dict[str, str]:
    """Wait until job ``job_id`` (for an array: all its tasks) has ended; return ``{JobID: State}``."""
    rows = wait_sacct(lambda rows: bool(rows) and all(is_terminal(r["State"]) for r in rows),
                      timeout, job_ids=job_id, fields=("JobID", "State"))
    return {r["JobID"]: r["State"] for r in rows}


def parse_time(value: str) -> datetime:
    """A sacct timestamp (``2026-01-31T12:00:00``) as a datetime; fails on ``Unknown``/``None``."""
    return datetime.fromisoformat(value)


# ----------------------------------------------------------------------------------- the cluster
@dataclass(frozen=True)
class SlurmCluster:
    """What tests need to know about the running cluster, and helpers bound to it."""

    state_dir: Path
    """The cluster's state directory (logs in ``state_dir / "log"``)."""
    conf: Path
    """slurm.conf in use; also exported as ``SLURM_CONF``."""
    partition: str
    """The default partition."""
    node: str
    cpus: int
    """CPUs the node declares (8 by default: more than the machine has, on purpose)."""
    gpus: int
    """Fake GPUs on the node (``SLURM_CI_GPUS`` when it was started); 0 means a CPU-only node."""
    started_here: bool
    """True if this test session started the cluster (it keeps running afterwards either way)."""

    def sacct(self, job_ids: str | int | Iterable[str | int], fields: str | Sequence[str] = DEFAULT_FIELDS,
              **kwargs: bool) -> list[dict[str, str]]:
        """See :func:`sacct`."""
        return sacct(job_ids, fields, **kwargs)

    def wait_sacct(self, predicate: Callable[..., T], timeout: float = 30.0, **kwargs: Any) -> Any:
        """See :func:`wait_sacct`."""
        return wait_sacct(predicate, timeout, **kwargs)

    def wait_job(self, job_id: str | int, timeout: float = 120.0) -> dict[str, str]:
        """See :func:`wait_job`."""
        return wait_job(job_id, timeout)

    def executor(self, folder: str | Path, **params: Any):
        """A submitit ``AutoExecutor(cluster="slurm")`` for this cluster, logging under ``folder``.

        Defaults: this partition, 1 CPU, 5 min; ``params`` override them. The repository root goes on
        the job's PYTHONPATH, so functions from ``tests``/``judgelm`` modules unpickle in the job
        whatever directory pytest was started from.
        """
        import submitit

        ex = submitit.AutoExecutor(folder=Path(folder) / "%j", cluster="slurm")
        base: dict[str, Any] = dict(
            slurm_partition=self.partition, timeout_min=5, cpus_per_task=1,
            slurm_setup=[f"export PYTHONPATH={REPO_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}"],
        )
        base.update(params)
        ex.update_parameters(**base)
        return ex


def _read_env_file(path: Path) -> dict[str, str]:
    """The ``export NAME=value`` lines that start-cluster.sh writes to ``$STATE_DIR/env``."""
    env = {}
    for line in path.read_text().splitlines():
        m = re.fullmatch(r"\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
        if m:
            env[m.group(1)] = m.group(2).strip().strip("'\"")
    return env


def _controller_listens(conf: Path) -> bool | None:
    """Whether slurmctld's port accepts connections, for a ``conf`` that start-cluster.sh wrote.

    None for any other conf (a real cluster may list backup controllers): then ask sinfo.
    """
    try:
        text = conf.read_text()
    except OSError:
        return None
    if "generated by judgelm-slurm" not in text:
        return None
    host = re.search(r"^\s*(?:SlurmctldHost|ControlMachine)\s*=\s*([^\s(#]+)(?:\(([^)\s]+)\))?", text, re.M | re.I)
    port = re.search(r"^\s*SlurmctldPort\s*=\s*(\d+)", text, re.M | re.I)
    if host is None:
        return None
    try:
        with socket.create_connection((host.group(2) or host.group(1), int(port.group(1)) if port else 6817),
                                      timeout=2):
            return True
    except OSError:
        return False


def _sinfo(env: dict[str, str]) -> str | None:
    """``partition|node|cpus|gres`` lines from sinfo, or None when no controller answers."""
    if shutil.which("sinfo") is None:
        return None
    # With SLURM_CONF naming a missing file (say, after stop-cluster.sh --purge) every Slurm client
    # retries for 60 s before giving up; with a stopped slurmctld sinfo takes 9 s to say so.
    conf = Path(env.get("SLURM_CONF") or "/etc/slurm/slurm.conf")
    if env.get("SLURM_CONF") and not conf.is_file():
        return None
    if _controller_listens(conf) is False:
        return None
    try:
        proc = subprocess.run(["sinfo", "--noheader", "-o", "%P|%N|%c|%G"], env=env,
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return None
    return proc.stdout if proc.returncode == 0 and proc.stdout.strip() else None


def _gpu_count(gres: str) -> int:
    """GPUs in an sinfo %G string such as ``gpu:2``, ``gpu:a100:4(S:0-1)`` or ``(null)``."""
    return sum(int(m.group(1)) for m in re.finditer(r"\bgpu(?::[^:,()]+)?:(\d+)", gres))


def _describe(sinfo_out: str, state_dir: Path, conf: Path, started_here: bool) -> SlurmCluster:
    rows = [line.split("|") for line in sinfo_out.splitlines() if line.strip()]
    default = next((r for r in rows if r[0].endswith("*")), rows[0])
    return SlurmCluster(state_dir=state_dir, conf=conf, partition=default[0].rstrip("*"), node=default[1],
                        cpus=int(default[2].rstrip("+")), gpus=_gpu_count(default[3]),
                        started_here=started_here)


def connect_or_start() -> SlurmCluster:
    """Find the running cluster or start one. Raises RuntimeError (with the reason) if neither works.

    Exports ``SLURM_CONF`` into ``os.environ`` on success.
    """
    state_dir = Path(os.environ.get("SLURM_CI_STATE_DIR") or DEFAULT_STATE_DIR)
    env_file = state_dir / "env"

    def conf_from_env_file() -> str | None:
        return _read_env_file(env_file).get("SLURM_CONF") if env_file.is_file() else None

    # An explicit SLURM_CONF wins; else the one our start-cluster.sh recorded. Without either,
    # sinfo falls back to /etc/slurm/slurm.conf (a system cluster, if any).
    conf = os.environ.get("SLURM_CONF") or conf_from_env_file()
    env = dict(os.environ, **({"SLURM_CONF": conf} if conf else {}))
    started_here = False
    out = _sinfo(env)
    if out is None:
        if sys.platform != "linux" or shutil.which("bash") is None:
            raise RuntimeError("the local Slurm cluster needs Linux and bash")
        if os.geteuid() != 0:
            raise RuntimeError("no Slurm cluster answers sinfo, and slurm/start-cluster.sh must run as root")
        t0 = time.monotonic()
        try:
            proc = subprocess.run(["bash", str(START_SCRIPT)], capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"{START_SCRIPT} did not finish in {e.timeout:.0f}s") from e
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"{START_SCRIPT} failed (exit {proc.returncode}):\n{tail}")
        conf = conf_from_env_file()
        if conf is None:
            raise RuntimeError(f"{START_SCRIPT} succeeded but wrote no SLURM_CONF to {env_file}")
        env["SLURM_CONF"] = conf
        out = _sinfo(env)
        if out is None:
            raise RuntimeError(f"{START_SCRIPT} succeeded but sinfo does not answer (SLURM_CONF={conf})")
        started_here = True
        print(f"[slurm_cluster] started the cluster in {time.monotonic() - t0:.1f}s "
              f"(stop it with: bash {STOP_SCRIPT})", file=sys.stderr)
    if conf:
        os.environ["SLURM_CONF"] = conf
    return _describe(out, state_dir, Path(conf or "/etc/slurm/slurm.conf"), started_here)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """The running local Slurm cluster (started on demand, never stopped here); see the module doc."""
    try:
        cluster = connect_or_start()
    except RuntimeError as e:
        problem = str(e)
    else:
        problem = None
    # (outside the except block, so that the report does not chain the RuntimeError's traceback)
    if problem is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but no Slurm cluster: {problem}", pytrace=False)
        pytest.skip(f"no local Slurm cluster ({problem}); set {REQUIRE_ENV}=1 to make this an error")
    yield cluster
