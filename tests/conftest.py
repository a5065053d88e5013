"""Shared fixtures: a random-weight micro judge (no training needed) and small runs built on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["tests.slurm_cluster"]

SAMPLE_QUESTIONS = ["What is 2+2?", "Name a prime number.", "Translate 'chat' to English.", "Write a haiku."]


def build_random_judge(path: Path, seed: int = 0, context: int = 4096, hidden: int = 32, layers: int = 2) -> Path:
    """A Llama-architecture judge with random weights and a BPE tokenizer that adds BOS like LLaMA's."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from judgelm.profiles.prompts import build_prompt

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [build_prompt(q, ["4", "5"]) for q in SAMPLE_QUESTIONS] + ["8 3\nAssistant 1 is better.\n", "7 7\n"]
    tok.train_from_iterator(corpus * 10, trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                 unk_token="<unk>", padding_side="left")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(hf), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=context,
                      initializer_range=0.5,  # large random weights give varied, non-repeating output
                      pad_token_id=hf.pad_token_id, bos_token_id=hf.bos_token_id, eos_token_id=hf.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    hf.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def random_judge(tmp_path_factory) -> Path:
    return build_random_judge(tmp_path_factory.mktemp("judge") / "random-judge")


def write_pairs(path: Path, n: int, with_reference_every: int = 0) -> Path:
    """``n`` JudgeLM-format pairs with varied lengths and GPT-4-style ground truth."""
    rows = []
    for i in range(n):
        row = {"question_id": i, "question_body": SAMPLE_QUESTIONS[i % 4] + f" (case {i})",
               "answer1_body": "first answer " * (1 + i % 7), "answer2_body": "second " * (1 + i % 3),
               "text": f"{1 + i % 10} {1 + (i * 3) % 10}\nAssistant 1 ..."}
        if with_reference_every and i % with_reference_every == 0:
            row["reference"] = {"text": f"reference answer {i}"}
            row["text_w_reference"] = f"{1 + (i * 7) % 10} {1 + i % 10}\n..."
        rows.append(row)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


TINY_CHAT = Path(__file__).resolve().parents[1] / "models" / "tiny-chat-1"


def build_random_chat_model(path: Path, seed: int = 0, hidden: int = 64) -> Path:
    """A Llama with random weights and the shipped tiny chat model's tokenizer and chat template: a model whose
    answers differ from every other's, for tests that need several models."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(TINY_CHAT)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                      initializer_range=0.5, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def random_chat_models(tmp_path_factory) -> list[Path]:
    """Two random chat models, ``chat-a`` and ``chat-b``."""
    root = tmp_path_factory.mktemp("chat")
    return [build_random_chat_model(root / name, seed) for seed, name in enumerate(("chat-a", "chat-b"))]
