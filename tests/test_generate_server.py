"""Answers from a served model (``engine.backend=openai``): a real ``transformers serve`` on 127.0.0.1 gives the
in-process engine's greedy answers with usage recorded; a server that parses a reasoning model's thinking out of
its answer (vLLM's ``reasoning_content``) has it stored apart from the answer the judge sees."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from judgelm.generation.export import export_run
from judgelm.generation.store import AnswerStore
from tests.conftest import TINY_CHAT
from tests.openai_server import SERVE, Server
from tests.test_generate import new_run, run_all, same_answers

ARGS = ("questions.limit=3", "engine.max_new_tokens=8", "shards=1", "answer_cache=false")


@pytest.mark.slow
def test_served_answers_equal_the_in_process_engine(tmp_path, monkeypatch):
    if not SERVE.exists():
        pytest.skip("needs transformers[serving] (the dev extra)")
    monkeypatch.setenv("JUDGELM_TEST_KEY", "sk-test")
    server = Server(tmp_path / "serve.log").start()
    try:
        served = new_run(tmp_path, TINY_CHAT, "served", *ARGS, "engine.backend=openai",
                         f"engine.base_url={server.base_url}", "engine.api_key_env=JUDGELM_TEST_KEY",
                         "engine.cost_per_1k_completion=2.0")
        store = run_all(served)
    finally:
        server.kill()
    same_answers(store, run_all(new_run(tmp_path, TINY_CHAT, "local", *ARGS)))
    assert "Server usage: 3 requests (0 retries)" in export_run(served.root)


class ReasoningServer(BaseHTTPRequestHandler):
    """Chat completions as vLLM answers them with a reasoning parser: the thinking in ``reasoning_content``."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        question = body["messages"][-1]["content"]
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": f"Answer to {question[:10]}",
                                          "reasoning_content": "First I think."}}],
                 "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("keep", [False, True])
def test_a_servers_reasoning_field_is_kept_apart(tmp_path, keep):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ReasoningServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        rd = new_run(tmp_path, TINY_CHAT, "reasoning", *ARGS, "engine.backend=openai", "engine.api=chat",
                     f"engine.base_url=http://127.0.0.1:{httpd.server_port}/v1", f"generate.keep_thinking={keep}")
        store = run_all(rd)
    finally:
        httpd.shutdown()
    text, reasoning = store.answers("text")[:, 0], store.answers("reasoning")[:, 0]
    assert all(r == "First I think." for r in reasoning)
    assert all(t.startswith("<think>First I think.</think>Answer to ") if keep else t.startswith("Answer to ")
               for t in text)
    assert AnswerStore(rd.answer_store).counts()["stop"] == 3
