"""A judge server as its own job: start an OpenAI-compatible server (``vllm serve`` by default) on a GPU node,
publish its address in the run directory once it answers, and stop it when asked (after the merge).

Only the run can use it: the job draws a secret key each time it starts a server, hands it to the server (the
environment variable ``key_env``, or the command's ``{api_key}``), and writes address and key to
``<run>/server.url``, readable by the run's owner only (mode 0600). The key is in no log, config, Slurm comment
or store. The array's shards run with ``engine.backend=openai engine.base_url=file:<run>/server.url``: they wait
for the file, send the key with every request, and after a connection error (or a refused key) they read it
again, so a requeued server on another node, with a new key, is found. The server job is Checkpointable: on the
requeue signal it stops its server and submitit requeues it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import submitit

from judgelm.config import ConfigError
from judgelm.rundir import write_text_atomic
from launch.cli import setup_logging
from launch.cluster import ClusterConfig, JudgeServerConfig, make_executor

log = logging.getLogger("judgelm.server")
URL_FILE, STOP_FILE = "server.url", "server.stop"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


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


def answers_without_key(url: str) -> bool:
    """Whether the server serves a request that carries no key (``/v1/models``: cheap, and guarded by vLLM)."""
    try:
        with urllib.request.urlopen(url + "/v1/models", timeout=30) as r:
            return 200 <= r.status < 300
    except OSError:  # 401/403 (an HTTPError), or no such route: not served
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


def check_server_auth(cfg: JudgeServerConfig) -> None:
    """A server anyone on the cluster network could use (and load) is refused: it must take the run's key, or listen
    on the loopback interface only."""
    if not cfg.key_env and "{api_key}" not in cfg.command and cfg.host not in LOOPBACK:
        raise ConfigError("cluster.server: the server takes no API key (cluster.server.key_env is empty and "
                          "cluster.server.command has no {api_key}), so anyone who reaches its port could use the "
                          "run's GPUs; give the server's key option with {api_key}, set key_env, or set "
                          "cluster.server.host=127.0.0.1 (server and shards on one node)")


def write_address(root: Path, url: str, key: str) -> None:
    """Where the shards find the server and the key they must send: readable by the run's owner only."""
    write_text_atomic(root / URL_FILE, json.dumps({"base_url": url, "api_key": key}) + "\n", mode=0o600)


class JudgeServerTask(submitit.helpers.Checkpointable):
    """The server job: serve until ``server.stop`` appears in the run directory or the server dies."""

    def __call__(self, run_dir: str, model: str, cfg: JudgeServerConfig, poll_s: float = 5) -> int:
        setup_logging()
        check_server_auth(cfg)
        root = Path(run_dir)
        host, port = cfg.host or socket.gethostname(), cfg.port or free_port()
        key = secrets.token_urlsafe(32)  # drawn here, on the node: never in the job's pickle, config or comment

        def command(api_key: str) -> str:
            return cfg.command.format(model=shlex.quote(model), host=host, port=port, api_key=api_key)

        log.info("starting the judge server: %s", command("<the run's key>"))
        env = {**os.environ, **({cfg.key_env: key} if cfg.key_env else {})}
        with open(root / "logs" / f"server-{port}.log", "ab") as out:
            proc = subprocess.Popen(command(key), shell=True, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        try:
            return self._serve(root, proc, host, f"http://{host}:{port}", key, cfg, poll_s)
        finally:
            stop_process(proc)
            (root / URL_FILE).unlink(missing_ok=True)

    def _serve(self, root: Path, proc: subprocess.Popen, host: str, url: str, key: str, cfg: JudgeServerConfig,
               poll_s: float) -> int:
        deadline = time.monotonic() + cfg.startup_timeout_s
        while not healthy(url + "/health"):
            if proc.poll() is not None:
                raise RuntimeError(f"the judge server exited with {proc.returncode} before answering (see logs/)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the judge server did not answer {url}/health in {cfg.startup_timeout_s:.0f} s")
            time.sleep(poll_s)
        if answers_without_key(url):
            if host not in LOOPBACK:
                raise RuntimeError(f"the judge server at {url} serves requests without the run's key, so anyone who "
                                   "reaches it could use the run's GPUs: stopped. Give it the key (cluster.server."
                                   "key_env, or {api_key} in cluster.server.command) or bind it to 127.0.0.1")
            log.warning("the judge server serves requests without a key; it listens on the loopback interface only")
        write_address(root, url + "/v1", key)
        log.info("judge server up at %s/v1 (its key: in %s, for the run's owner only)", url, root / URL_FILE)
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
    check_server_auth(server)
    ex = make_executor(server_cluster(cluster, server), Path(run_dir) / "logs", f"judgelm-server:{run}",
                       comment=f"run={run} judge-server", chdir=chdir)
    return ex.submit(JudgeServerTask(), str(run_dir), model, server)
