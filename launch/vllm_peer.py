"""A vLLM engine in vLLM's own venv, driven by JSON lines on stdin: for ``make bench`` and the vLLM tests.

    .venv-vllm/bin/python -m launch.vllm_peer      # then one request per line, one reply per line

vLLM's CPU build pins a transformers older than the main venv's, so the benchmark and the tests (in the main
venv) run vLLM in this separate process and hand it the very token ids they give the HF engine. Requests:

- ``{"load": {"model": {ModelConfig fields}, "engine": {EngineConfig fields}}}`` loads ``VLLMEngine`` (the
  backend shards use); reply ``{"load_s": ..., "versions": {...}}``.
- ``{"generate": {"units": [...], "ids": [[...]], "engine": {EngineConfig fields}, "reset_prefix_cache": bool,
  "outputs": bool}}`` judges them with the loaded model and those sampling settings; reply ``{"seconds": ...,
  "cpu_seconds": ... (of the whole process tree), "new_tokens": ..., "generations": [...] (if outputs)}``.
  Resetting the prefix cache first makes a repeat start cold, so a timed run gains only from what its own prompts
  share.

Replies go to the original stdout; everything vLLM prints goes to stderr.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from judgelm.inference.config import EngineConfig, ModelConfig


def versions() -> dict:
    import torch
    import transformers
    import vllm

    return {"vllm": vllm.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def generation_json(g) -> dict:
    top = None if g.top_ids is None else {"ids": g.top_ids.tolist(),
                                          "logprobs": [[None if x != x else x for x in row] for row in
                                                       g.top_logprobs.tolist()]}
    return {"token_ids": g.token_ids, "text": g.text, "stopped": g.stopped, "top": top}


def cpu_seconds() -> float:
    """CPU time of this process and all its descendants (vLLM's engine core and workers) so far."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def serve(requests, reply) -> None:
    from judgelm.inference.vllm_engine import VLLMEngine

    engine = None
    for line in requests:
        req = json.loads(line)
        if "load" in req:
            t = time.perf_counter()
            engine = VLLMEngine(ModelConfig(**req["load"]["model"]), EngineConfig(**req["load"]["engine"]))
            out = {"load_s": time.perf_counter() - t, "versions": versions()}
        else:
            g = req["generate"]
            engine.cfg = EngineConfig(**g["engine"])
            if g.get("reset_prefix_cache"):
                engine.llm.reset_prefix_cache()
            t, cpu = time.perf_counter(), cpu_seconds()
            gens = engine.generate(g["units"], g["ids"])
            out = {"seconds": time.perf_counter() - t, "cpu_seconds": cpu_seconds() - cpu,
                   "new_tokens": sum(len(x.token_ids) for x in gens)}
            if g.get("outputs"):
                out["generations"] = [generation_json(x) for x in gens]
        reply.write(json.dumps(out) + "\n")
        reply.flush()


class Peer:
    """The client: a peer process started with ``python`` (the vLLM venv's), running this checkout's code."""

    def __init__(self, python: str, stderr=None):
        repo = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(repo)}
        self.proc = subprocess.Popen([python, "-m", "launch.vllm_peer"], cwd=repo, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)

    def request(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the vLLM peer exited with code {self.proc.wait()}")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=120)


def main() -> int:
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # vLLM's own output must not mix with the replies
    serve(sys.stdin, reply)
    return 0


if __name__ == "__main__":  # vLLM spawns its engine core, which imports this module again
    raise SystemExit(main())
