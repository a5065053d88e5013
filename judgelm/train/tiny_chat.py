"""Build a tiny answer-generating chat model from scratch, for the generate → judge → leaderboard loop on a CPU.

No model weights can be downloaded on this machine, so ``make evaluate MODELS=…`` has nothing to generate answers
with unless the project builds it. This trains a Llama of a few MB on the preferred answers of LLMBar's pairs (the
subsets the tiny judge trains on, ``judgelm.train.tiny_data.SUBSETS``), leaving out any instruction that AlpacaEval
or MT-Bench asks, and saves it with a byte-level BPE tokenizer, a chat template and a generation config. Its answers
are English-looking text loosely about the instruction: they prove the pipeline, **not** a model.

    python -m judgelm.train.tiny_chat --out models/tiny-chat-1 --hidden 64 --layers 2 --heads 2 --steps 1500

The loop is plain PyTorch (one process, AdamW, cosine decay, loss on the assistant's tokens only): the project's
trainer is built for judgements (its targets are score lines), and a chat model needs nothing of its machinery.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from judgelm.config import CONFIG_DIR, REPO_ROOT
from judgelm.train.tiny_data import LLMBAR_ROOT, SUBSETS
from judgelm.train.tokenizer import train_tokenizer

# A plain-text chat format (the tokenizer has no role tokens), ``configs/chat_templates/plain.jinja``: the model's
# turn ends with EOS, which stops generation. Saved as the tokenizer's ``chat_template``, so rendering goes through
# ``apply_chat_template`` as for any chat model.
CHAT_TEMPLATE = (CONFIG_DIR / "chat_templates" / "plain.jinja").read_text()
MAX_LENGTH = 512  # tokens per training example; longer answers are cut (their EOS is then never seen)


def held_out_instructions() -> set[str]:
    """Every instruction the shipped evaluation sets ask (AlpacaEval's 805, MT-Bench's turns): never trained on."""
    alpaca = json.loads((REPO_ROOT / "data/evaluation/alpaca_eval/alpaca-7b/annotations.json").read_text())
    mt = [json.loads(x) for x in (REPO_ROOT / "data/evaluation/mt_bench/question.jsonl").read_text().splitlines()]
    return {r["instruction"].strip() for r in alpaca} | {t.strip() for q in mt for t in q["turns"]}


def conversations(root: Path = LLMBAR_ROOT) -> list[tuple[str, str]]:
    """(instruction, preferred answer) of every usable LLMBar pair, in file order, evaluation instructions left out."""
    held_out, out = held_out_instructions(), []
    for subset in SUBSETS:
        for item in json.loads((root / subset / "dataset.json").read_text(encoding="utf-8")):
            question, label = item.get("input"), item.get("label")
            answer = item.get(f"output_{label}") if label in (1, 2) else None
            if all(isinstance(t, str) and t.strip() for t in (question, answer)) and question.strip() not in held_out:
                out.append((question, answer))
    return out


def encode(tokenizer, question: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of the rendered exchange and their labels (-100 on the prompt: only the answer is learned)."""
    user = [{"role": "user", "content": question}]
    prompt = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": answer}], tokenize=False)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"][:MAX_LENGTH]
    return ids, [-100] * len(p_ids) + ids[len(p_ids):]


def build(out: Path, hidden: int, layers: int, heads: int, steps: int, batch: int, lr: float, seed: int,
          vocab: int) -> None:
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    started = time.time()
    torch.set_num_threads(1)  # CPU results depend on the thread count: one thread, so a rebuild matches
    pairs = conversations()
    tokenizer = train_tokenizer((t for qa in pairs for t in qa), vocab, 2048)
    tokenizer.chat_template = CHAT_TEMPLATE
    data = [encode(tokenizer, q, a) for q, a in pairs]
    data = [(ids, labels) for ids, labels in data if any(x != -100 for x in labels)]
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 11 // 4,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                      max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                      tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    model.train()
    for step in range(steps):
        rows = rng.sample(data, batch)
        width = max(len(ids) for ids, _ in rows)
        ids = torch.tensor([x + [tokenizer.pad_token_id] * (width - len(x)) for x, _ in rows])
        labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in rows])
        logits = model(input_ids=ids).logits[:, :-1]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for g in opt.param_groups:  # warmup over the first 5 % of steps, then cosine decay to zero
            g["lr"] = lr * min(1.0, (step + 1) / max(1, steps // 20)) * 0.5 * (1 + math.cos(math.pi * step / steps))
        opt.step()
        opt.zero_grad()
        if step % 25 == 0 or step == steps - 1:
            print(f"step {step + 1}/{steps} loss {loss.item():.3f} ({time.time() - started:.0f} s)", flush=True)
    model.eval()
    model.generation_config = GenerationConfig(bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id,
                                               pad_token_id=cfg.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: {n / 1e6:.2f}M parameters, {len(data)} conversations, {steps} steps of {batch}, "
          f"{time.time() - started:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2, help="attention heads (vLLM's CPU kernels want head size 32+)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    build(a.out, a.hidden, a.layers, a.heads, a.steps, a.batch, a.lr, a.seed, a.vocab)
    return 0


if __name__ == "__main__":
    sys.exit(main())
