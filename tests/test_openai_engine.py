"""engine.backend=openai against a real OpenAI-compatible server (``transformers serve``) on 127.0.0.1: the same
verdicts as the in-process engine, retries through a server restart, resume after retries run out, no API key
written anywhere."""

import time

import numpy as np
import pytest
import yaml

from judgelm.inference import BACKENDS
from judgelm.inference.config import EngineConfig
from judgelm.inference.openai_engine import ServerUnavailable, resolve_base_url, resolve_server
from judgelm.inference.usage import Usage, total_usage, write_usage
from judgelm.judging.progress import read_progress
from judgelm.judging.shard import run_shard
from judgelm.judging.store import VerdictStore
from tests.conftest import write_pairs
from tests.openai_server import SERVE, Server
from tests.test_judge_run import new_run, shard_process

SECRET = "sk-test-0123456789-never-written"


@pytest.mark.parametrize("fields, message", [
    ({"backend": "tgi"}, "engine.backend must be one of hf, vllm, openai"),
    ({"backend": "openai"}, "needs engine.base_url"),
    ({"backend": "openai", "base_url": "http://h/v1", "api": "responses"}, "engine.api must be completions or chat"),
    ({"backend": "openai", "base_url": "http://h/v1", "concurrency": 0}, "engine.concurrency"),
])
def test_backend_settings_are_checked_against_the_one_backend_table(fields, message):
    assert list(BACKENDS) == ["hf", "vllm", "openai"]
    with pytest.raises(ValueError, match=message):
        EngineConfig(**fields).validate()


def test_base_url_from_a_server_file_and_usage_summed_over_attempts(tmp_path):
    assert resolve_base_url("http://h:1/v1", 0) == "http://h:1/v1"
    with pytest.raises(ServerUnavailable, match="no judge server address"):
        resolve_base_url(f"file:{tmp_path / 'server.url'}", 0)
    (tmp_path / "server.url").write_text("http://node7:8000/v1\n")
    assert resolve_base_url(f"file:{tmp_path / 'server.url'}", 0) == "http://node7:8000/v1"
    (tmp_path / "server.url").write_text('{"base_url": "http://node8:8000/v1", "api_key": "k3y"}\n')
    assert resolve_server(f"file:{tmp_path / 'server.url'}", 0) == ("http://node8:8000/v1", "k3y")
    write_usage(tmp_path, 0, 1, Usage(requests=3, retries=1, prompt_tokens=300, completion_tokens=30, cost_usd=0.5))
    write_usage(tmp_path, 0, 2, Usage(requests=2, prompt_tokens=200, completion_tokens=20, cost_usd=0.25))
    assert total_usage(tmp_path) == Usage(5, 1, 500, 50, 0.75)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not SERVE.exists():
        pytest.skip("needs transformers[serving] (the dev extra)")
    s = Server(tmp_path_factory.mktemp("server") / "serve.log").start()
    yield s
    s.kill()


def openai_args(server, *extra):
    return ["engine.backend=openai", f"engine.base_url={server.base_url}", "engine.api_key_env=JUDGELM_TEST_KEY",
            "engine.concurrency=2", *extra]


def verdicts(rd):
    store = VerdictStore(rd.store)
    return store.verdicts("text"), store.verdicts("scores"), store.verdicts("status")


@pytest.mark.slow
def test_server_verdicts_equal_the_in_process_engine(tmp_path, random_judge, server, monkeypatch):
    monkeypatch.setenv("JUDGELM_TEST_KEY", SECRET)
    data = write_pairs(tmp_path / "pairs.jsonl", 12, with_reference_every=4)
    local = new_run(tmp_path, random_judge, data, "hf", "shards=1")
    remote = new_run(tmp_path, random_judge, data, "api", "shards=1", *openai_args(server))
    run_shard(local.root, 0, 1)
    run_shard(remote.root, 0, 1)
    (t_hf, s_hf, st_hf), (t_api, s_api, st_api) = verdicts(local), verdicts(remote)
    same = np.mean([a == b for a, b in zip(t_hf, t_api)])
    print(f"identical verdict texts, transformers serve vs in-process HF engine: {same:.3f} of {len(t_hf)}")
    assert same == 1.0
    assert np.array_equal(st_hf, st_api) and np.array_equal(np.nan_to_num(s_hf, nan=-1), np.nan_to_num(s_api, nan=-1))
    usage = total_usage(remote.root)
    assert usage.requests == len(t_api) and usage.prompt_tokens > 100 * len(t_api) and usage.completion_tokens > 0
    assert total_usage(local.root) is None
    assert yaml.safe_load(remote.config.read_text())["engine"]["api_key_env"] == "JUDGELM_TEST_KEY"
    for f in remote.root.rglob("*"):
        assert not f.is_file() or SECRET.encode() not in f.read_bytes(), f


def wait_for_commit(store_path, n: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while VerdictStore(store_path).done().sum() < n:
        assert time.monotonic() < deadline, "no chunk committed"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_killed_server_is_retried_until_it_is_back_then_resumed_when_retries_run_out(tmp_path, random_judge, server,
                                                                                      monkeypatch):
    monkeypatch.setenv("JUDGELM_TEST_KEY", SECRET)
    data = write_pairs(tmp_path / "pairs.jsonl", 24)
    # Both runs judge the same prompts: without the verdict cache off, the second would take them all from it and
    # never call the server this test kills.
    rd = new_run(tmp_path, random_judge, data, "restart", "shards=1", "store.chunk_units=4", "verdict_cache=false",
                 *openai_args(server, "engine.max_retries=8", "engine.backoff_s=1"))
    n_units = VerdictStore(rd.store).n_units
    # 1. killed after the first commit and restarted: the requests in flight are retried, the shard finishes
    shard = shard_process(rd.root)
    wait_for_commit(rd.store, 4)
    server.kill()
    server.start()
    assert shard.wait() == 0 and VerdictStore(rd.store).done().all()
    assert total_usage(rd.root).retries > 0 and read_progress(rd.shard_progress(0)).attempts[-1].state == "finished"
    # 2. killed for good: retries run out, the chunk in flight is not committed, the shard fails ...
    rd2 = new_run(tmp_path, random_judge, data, "resume", "shards=1", "store.chunk_units=4", "verdict_cache=false",
                  *openai_args(server, "engine.max_retries=1", "engine.backoff_s=0.1"))
    shard = shard_process(rd2.root)
    wait_for_commit(rd2.store, 4)
    server.kill()
    assert shard.wait() != 0
    done = VerdictStore(rd2.store).done()
    assert 4 <= done.sum() < n_units
    assert read_progress(rd2.shard_progress(0)).attempts[-1].state == "failed"
    # ... and running it again once the server is back judges only what was not committed
    server.start()
    result = run_shard(rd2.root, 0, 1)
    assert VerdictStore(rd2.store).done().all() and result.units_judged == n_units - done.sum()
    t_first, _, _ = verdicts(rd)
    t_resumed, _, _ = verdicts(rd2)
    assert list(t_first) == list(t_resumed)  # greedy: the interrupted run ends with the same verdicts


@pytest.mark.slow
def test_chat_api_with_a_chat_profile_equals_the_in_process_chat_template(tmp_path, random_judge, server,
                                                                         monkeypatch):
    """api=chat: the server applies the model's chat template to the profile's messages; the in-process engine
    applies the same template locally, so greedy verdicts agree."""
    import shutil

    from transformers import AutoTokenizer

    monkeypatch.setenv("JUDGELM_TEST_KEY", SECRET)
    judge = shutil.copytree(random_judge, tmp_path / "chat-judge")
    tok = AutoTokenizer.from_pretrained(judge)
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    tok.save_pretrained(judge)
    data = write_pairs(tmp_path / "pairs.jsonl", 6)
    args = ("shards=1", "judge.profile=mtbench-gpt4", "engine.max_new_tokens=12")
    local = new_run(tmp_path, judge, data, "hf", *args)
    remote = new_run(tmp_path, judge, data, "api", *args, *openai_args(server, "engine.api=chat"))
    run_shard(local.root, 0, 1)
    run_shard(remote.root, 0, 1)
    (t_hf, _, st_hf), (t_api, _, st_api) = verdicts(local), verdicts(remote)
    same = np.mean([a == b for a, b in zip(t_hf, t_api)])
    print(f"identical verdict texts, chat API vs in-process chat template: {same:.3f} of {len(t_hf)}")
    assert same == 1.0 and np.array_equal(st_hf, st_api)
    assert yaml.safe_load(remote.config.read_text())["engine"]["mode"] == "full"  # mtbench explains first
