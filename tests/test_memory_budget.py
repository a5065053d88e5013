"""The decode batch budget comes from the model's KV bytes per token and the GPU memory left after loading."""

import torch
from transformers import LlamaConfig

from judgelm.inference.config import EngineConfig, ModelConfig
from judgelm.inference.hf import HFEngine
from judgelm.inference.memory import CPU_BATCH_TOKENS, batch_token_budget, kv_bytes_per_token
from judgelm.inference.models import load_judge

GB = 1 << 30
LLAMA_7B = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32)
LLAMA_13B = LlamaConfig(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40)
LLAMA3_70B = LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                         num_key_value_heads=8)


def test_kv_bytes_per_token_of_known_shapes():
    assert kv_bytes_per_token(LLAMA_7B, torch.float16) == 512 * 1024  # the well-known 0.5 MiB per token
    assert kv_bytes_per_token(LLAMA_13B, torch.float16) == 800 * 1024
    assert kv_bytes_per_token(LLAMA3_70B, torch.bfloat16) == 320 * 1024  # grouped-query attention: 8 kv heads


def test_a_13b_judge_on_an_a100_80gb_gets_less_than_the_old_fixed_65536():
    free = 80 * GB - 26 * GB  # fp16 weights loaded
    budget = batch_token_budget(LLAMA_13B, torch.float16, free, 80 * GB, margin=0.10)
    assert 30_000 < budget < CPU_BATCH_TOKENS
    assert budget * kv_bytes_per_token(LLAMA_13B, torch.float16) < free - 8 * GB
    roomy = batch_token_budget(LLAMA_7B, torch.float16, 141 * GB - 13 * GB, 141 * GB, margin=0.10)
    assert roomy > 2 * budget  # an H200 with a 7B judge takes far bigger batches


def test_on_a_cpu_the_engine_keeps_the_fixed_budget_and_an_explicit_one_wins(random_judge):
    model, tok, device, _ = load_judge(ModelConfig(path=str(random_judge)))
    assert HFEngine(model, tok, device, EngineConfig()).cfg.batch_tokens == CPU_BATCH_TOKENS
    assert HFEngine(model, tok, device, EngineConfig(batch_tokens=5000)).cfg.batch_tokens == 5000
