"""A judge server as its own job: start an OpenAI-compatible server (``vllm serve`` by default) on a GPU node,
publish its address in the run directory once it answers, and stop it when asked (after the merge).

The array's shards run with ``engine.backend=openai engine.base_url=file:<run>/server.url``: they wait for the
address, and after a connection error they read it again, so a requeued server on another node is found. The
server job is Checkpointable: on the requeue signal it stops its server and submitit requeues it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import submitit

from judgelm.rundir import write_text_atomic
from launch.cli import setup_logging
from launch.cluster import ClusterConfig, JudgeServerConfig, make_executor

log = logging.getLogger("judgelm.server")
URL_FILE, STOP_FILE = "server.url", "server.stop"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def request_stop(run_dir: str | Path) -> None:
    """Ask the run's judge server to shut down (the merge calls this once it has ended, whatever its outcome)."""
    write_text_atomic(Path(run_dir) / STOP_FILE, f"{time.time()}\n")


def stop_process(proc: subprocess.Popen, grace_s: float = 30) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class JudgeServerTask(submitit.helpers.Checkpointable):
    """The server job: serve until ``server.stop`` appears in the run directory or the server dies."""

    def __call__(self, run_dir: str, model: str, cfg: JudgeServerConfig, poll_s: float = 5) -> int:
        setup_logging()
        root = Path(run_dir)
        host, port = cfg.host or socket.gethostname(), cfg.port or free_port()
        command = cfg.command.format(model=shlex.quote(model), host=host, port=port)
        log.info("starting the judge server: %s", command)
        with open(root / "logs" / f"server-{port}.log", "ab") as out:
            proc = subprocess.Popen(command, shell=True, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return self._serve(root, proc, f"http://{host}:{port}", cfg, poll_s)
        finally:
            stop_process(proc)
            (root / URL_FILE).unlink(missing_ok=True)

    def _serve(self, root: Path, proc: subprocess.Popen, url: str, cfg: JudgeServerConfig, poll_s: float) -> int:
        deadline = time.monotonic() + cfg.startup_timeout_s
        while not healthy(url + "/health"):
            if proc.poll() is not None:
                raise RuntimeError(f"the judge server exited with {proc.returncode} before answering (see logs/)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the judge server did not answer {url}/health in {cfg.startup_timeout_s:.0f} s")
            time.sleep(poll_s)
        write_text_atomic(root / URL_FILE, url + "/v1\n")
        log.info("judge server up at %s/v1", url)
        while not (root / STOP_FILE).exists():
            if proc.poll() is not None:
                raise RuntimeError(f"the judge server exited with {proc.returncode} while serving (see logs/)")
            time.sleep(poll_s)
        log.info("stop requested: shutting the judge server down")
        return 0


def server_cluster(c: ClusterConfig, server: JudgeServerConfig) -> ClusterConfig:
    """The shards' cluster profile with the server's GPUs and time limit: one node, one task."""
    return dataclasses.replace(c, gpus_per_node=server.gpus, timeout_min=server.timeout_min, nodes=1)


def point_shards_at_server(cfg, run_dir: Path) -> None:
    """With ``cluster.server.enabled``, the shards call the run's own server: its address appears in the run
    directory once it answers (``engine.base_url=file:...``)."""
    if cfg.cluster.server.enabled:
        cfg.engine.backend, cfg.engine.base_url = "openai", f"file:{run_dir / URL_FILE}"


def submit_server(run_dir: str | Path, run: str, model: str, cluster: ClusterConfig, server: JudgeServerConfig,
                  chdir: str | Path | None = None):
    """Submit the judge-server job of a run; returns its submitit job. Submit it before the array, whose shards
    wait for ``server.url``."""
    ex = make_executor(server_cluster(cluster, server), Path(run_dir) / "logs", f"judgelm-server:{run}",
                       comment=f"run={run} judge-server", chdir=chdir)
    return ex.submit(JudgeServerTask(), str(run_dir), model, server)
