"""A model directory shaped like a released JudgeLM / Vicuna repository: a sentencepiece ``tokenizer.model``
(byte fallback, ``<unk>``/``<s>``/``</s>`` = 0/1/2, no pad token) and JSON configs, no ``tokenizer.json``."""

from __future__ import annotations

import io
import json
from pathlib import Path

from judgelm.profiles.prompts import build_prompt


def build_sentencepiece_judge(path: Path, eos_ids: list[int] | None = None, weights: bool = False) -> Path:
    """The tokenizer files (and, with ``weights``, a random tiny Llama); ``eos_ids`` go into
    ``generation_config.json`` as instruct judges with several end tokens have them."""
    import sentencepiece as spm

    path.mkdir(parents=True, exist_ok=True)
    texts = [build_prompt(f"What is {i}+{i}?", [f"It is {2 * i}.", f"Maybe {i}"]) for i in range(50)]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts + ["8 3\nAssistant 1 is better.\n"] * 5), model_writer=buf, vocab_size=400,
        model_type="bpe", byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        remove_extra_whitespaces=False, normalization_rule_name="identity", minloglevel=2)
    (path / "tokenizer.model").write_bytes(buf.getvalue())
    (path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": None, "add_bos_token": True, "add_eos_token": False, "model_max_length": 2048}))
    (path / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}))
    if weights:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, initializer_range=0.5, bos_token_id=1,
                          eos_token_id=2)
        LlamaForCausalLM(cfg).half().save_pretrained(path)  # released JudgeLM weights are fp16
    else:
        (path / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"],
                                                      "vocab_size": 400, "torch_dtype": "float16"}))
    if eos_ids:
        (path / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": eos_ids}))
    return path
