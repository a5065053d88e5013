"""The vLLM backend gives the same verdicts as the HF engine (GPU nodes with the vllm extra only)."""

import pytest
import torch

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="vLLM needs CUDA")
def test_vllm_and_hf_agree_greedily(random_judge):
    pytest.importorskip("vllm")
    from judgelm.inference import make_engine
    from judgelm.inference.config import EngineConfig
    from judgelm.models import ModelConfig, encode_with_bos
    from judgelm.prompts import build_prompt

    cfg = ModelConfig(path=str(random_judge), dtype="float32")
    prompts = [build_prompt(f"Question {i}?", ["yes " * i, "no"]) for i in range(1, 9)]
    results = {}
    for backend in ("hf", "vllm"):
        engine = make_engine(cfg, EngineConfig(backend=backend, mode="full", max_new_tokens=12, logprobs_topk=3))
        ids = encode_with_bos(engine.tokenizer, prompts)
        results[backend] = engine.generate(list(range(len(ids))), ids)
    for h, v in zip(results["hf"], results["vllm"]):
        assert h.token_ids == v.token_ids
        assert (h.top_ids[: len(h.token_ids), 0] == v.top_ids[: len(v.token_ids), 0]).all()
