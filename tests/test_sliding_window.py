"""Sliding-window judges (Mistral family) in a decode batch of several prompt widths: the narrower rows' windows
are counted in positions, not cache slots, so every row matches one-at-a-time generation."""

import pytest
import torch

from judgelm.inference.config import EngineConfig, ModelConfig
from judgelm.inference.hf import HFEngine, decode_batches, plan_batches
from judgelm.inference.models import encode_with_bos, load_judge
from judgelm.inference.window import attention_window
from judgelm.profiles.prompts import build_prompt

WINDOW = 64


def save_random(model_cls, config_cls, path, tok, **extra):
    torch.manual_seed(0)
    cfg = config_cls(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                     initializer_range=0.5, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                     eos_token_id=tok.eos_token_id, **extra)
    model_cls(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def mistral(random_judge, tmp_path_factory):
    from transformers import MistralConfig, MistralForCausalLM

    tok = load_judge(ModelConfig(path=str(random_judge))).tokenizer
    path = save_random(MistralForCausalLM, MistralConfig, tmp_path_factory.mktemp("mistral") / "m", tok,
                       sliding_window=WINDOW)
    return load_judge(ModelConfig(path=str(path), attn_implementation="sdpa"))


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_narrow_rows_of_a_wide_decode_batch_see_the_same_window_as_alone(mistral, attention):
    model, tok, device, _ = mistral
    model.set_attn_implementation(attention)
    ids = encode_with_bos(tok, [build_prompt("Q" * (3 + 15 * i), ["a" * (i % 5), "b"]) for i in range(8)])
    lengths = [len(x) for x in ids]
    assert WINDOW < min(lengths) and max(lengths) - min(lengths) > WINDOW  # rows lose all of their window if wrong
    eng = HFEngine(model, tok, device, EngineConfig(mode="full", max_new_tokens=12, max_padding=0.0))
    groups = plan_batches(lengths, 12, eng.cfg.batch_tokens, eng.cfg.max_batch, 0.0)
    assert len(groups) > 2 and len(decode_batches(groups, lengths, 12, eng.cfg.batch_tokens, eng.cfg.max_batch)) == 1
    gens = eng.generate(list(range(len(ids))), ids)
    for g, p in zip(gens, ids):
        alone = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                               max_new_tokens=12, do_sample=False, eos_token_id=eng.stop_ids.tolist(), pad_token_id=0)
        assert g.token_ids == alone[0, len(p):].tolist()


def test_windows_are_read_from_the_config_and_mixed_layouts_are_refused():
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    assert attention_window(MistralConfig(sliding_window=WINDOW), "sdpa") == WINDOW
    assert attention_window(MistralConfig(sliding_window=None), "sdpa") is None
    assert attention_window(LlamaConfig(), "sdpa") is None
    assert attention_window(Qwen2Config(sliding_window=WINDOW), "sdpa") is None  # use_sliding_window is off
    assert attention_window(MistralConfig(sliding_window=WINDOW), "flash_attention_2") is None  # exact already
    mixed = Qwen2Config(use_sliding_window=True, sliding_window=WINDOW, num_hidden_layers=4, max_window_layers=2)
    with pytest.raises(ValueError, match="flash_attention_2"):
        attention_window(mixed, "sdpa")
