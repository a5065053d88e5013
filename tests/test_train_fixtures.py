"""Shared helpers of the training tests: a micro training set and micro run configs (no tests in here)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from judgelm.train.config import TrainConfig, load_train_config

WORDS = ("apple river stone cloud green quick seven orbit paper lamp music north bright sugar table window "
         "garden simple ocean yellow").split()


def micro_record(i: int, rng: random.Random, with_reference: bool = True) -> dict:
    better = rng.choice((1, 2))
    a, b = rng.randint(6, 9), rng.randint(2, 5)
    s1, s2 = (a, b) if better == 1 else (b, a)
    answers = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(2)]
    rec = {
        "question_id": i,
        "question_body": f"Question {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) + "?",
        "answer1_body": answers[0], "answer2_body": answers[1],
        "answer1_id": f"{i}-a", "answer2_id": f"{i}-b",
        "answer1_model_id": "model-a", "answer2_model_id": "model-b",
        "answer1_metadata": {"decoding_method": "greedy"}, "answer2_metadata": {"decoding_method": "top_p"},
        "text": f"{s1} {s2}\nAssistant {better} is better than Assistant {3 - better}.",
        "score": [float(s1), float(s2)],
    }
    if with_reference:
        rec["reference"] = {"text": answers[better - 1]}
        rec["text_w_reference"] = f"{s1 + 1 if better == 1 else s1} {s2 + 1 if better == 2 else s2}\n" \
                                  f"Assistant {better} matches the reference; Assistant {3 - better} does not."
        rec["score_w_reference"] = [0.0, 0.0]
    return rec


def write_micro_data(path: Path, n: int = 40, seed: int = 0) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(json.dumps(micro_record(i, rng)) + "\n" for i in range(n)))
    return path


def micro_overrides(tmp: Path, data: Path, run: str, **extra) -> list[str]:
    """A run that trains a ~70k-parameter Llama for 20 steps in a few seconds."""
    args = {
        "run": run, "runs_dir": str(tmp / "runs"), "export_dir": "null", "seed": 7, "epochs": 2,
        "global_batch": 4, "micro_batch": 2, "log_every": 100, "data.train_files": f"[{data}]",
        "data.max_length": 512, "model.scratch.hidden_size": 32, "model.scratch.num_layers": 2,
        "model.scratch.num_heads": 2, "model.scratch.intermediate_size": 64,
        "model.scratch.max_position_embeddings": 512, "model.scratch.vocab_size": 1000, "optim.lr": 1e-2,
        "optim.warmup_ratio": 0.1, "threads": 1,  # a micro model gains nothing from a second thread
    }
    args.update(extra)
    return ["size=tiny"] + [f"{k}={v}" for k, v in args.items()]


def micro_config(tmp: Path, data: Path, run: str, **extra) -> TrainConfig:
    return load_train_config(micro_overrides(tmp, data, run, **extra))


def losses(run_dir: Path) -> dict[int, float]:
    """Loss per step from ``metrics.jsonl``; a step logged twice (re-run after a crash) keeps the last value."""
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        out[row["step"]] = row["loss"]
    return out
