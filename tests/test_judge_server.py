"""launch/server.py's job with a real server (``transformers serve``): it publishes its address once healthy, the
shards find it through ``engine.base_url=file:<run>/server.url``, and it stops when the merge asks."""

import urllib.request

import pytest

from judgelm.judging.shard import run_shard
from judgelm.judging.store import VerdictStore
from launch.cluster import ClusterConfig
from launch.server import URL_FILE, JudgeServerConfig, request_stop, submit_server
from tests.conftest import write_pairs
from tests.openai_server import SERVE
from tests.test_judge_run import new_run

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not SERVE.exists(), reason="needs transformers[serving]")]


def test_server_job_serves_the_shards_then_stops_on_request(tmp_path, random_judge):
    data = write_pairs(tmp_path / "pairs.jsonl", 6)
    url_file = tmp_path / "served" / URL_FILE
    rd = new_run(tmp_path, random_judge, data, "served", "shards=1", "engine.backend=openai",
                 f"engine.base_url=file:{url_file}")
    server = JudgeServerConfig(command=f"{SERVE} serve --host {{host}} --port {{port}}", host="127.0.0.1", gpus=0)
    job = submit_server(rd.root, "served", str(random_judge), ClusterConfig(executor="local"), server)
    try:
        run_shard(rd.root, 0, 1)  # waits for the address, then judges through the server
        assert VerdictStore(rd.store).done().all()
        url = url_file.read_text().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        request_stop(rd.root)
        assert job.result() == 0
    finally:
        job.cancel()
    assert not url_file.exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=5)
    assert list((rd.root / "logs").glob("server-*.log"))
