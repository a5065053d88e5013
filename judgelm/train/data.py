"""From JudgeLM training records to masked, batched token ids (reference §4.2, without the §4.6 defects).

A sample is drawn as a pure function of ``(seed, epoch, index)``: whether it shows the reference and whether
its answers are swapped come from a generator seeded with those three numbers, and the augmented view is a new
frozen record, so the source records never change and a resumed run sees exactly the samples an uninterrupted
run would have. The prompt is byte-for-byte the inference prompt (``judgelm.profiles.prompts.build_prompt``); the
target is the judgement plus EOS, and only target tokens carry a label. A sample that does not fit in
``max_length`` is dropped (and counted) rather than truncated.

Batches: every optimizer step takes the next ``global_batch`` indices of a per-epoch permutation, cut into
``grad_accum × world`` micro-batches of similar lengths (less padding) that are dealt to the processes, so
which samples make up a step does not depend on the number of processes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from judgelm.data.records import Loaded, RecordError, Source, iter_json_objects, load_objects, require_id, require_text
from judgelm.data.verdicts import parse_scores
from judgelm.inference.models import encode_with_bos
from judgelm.profiles.prompts import build_prompt

IGNORE = -100


@dataclass(frozen=True)
class TrainRecord:
    """One validated training record; frozen, so augmentation can only ever make new ones."""

    question_id: int | str
    question: str
    answers: tuple[str, str]
    answer_ids: tuple[Any, Any]
    model_ids: tuple[Any, Any]
    metadata: tuple[Any, Any]
    text: str
    reference: str | None = None
    text_w_reference: str | None = None


def _judgement(obj: dict, key: str, src: Source) -> str:
    text = require_text(obj, key, src)
    if text == "error":  # JudgeLM's marker for a failed GPT-4 call; JudgeLM drops these rows too
        raise RecordError(src, key, "judgement is 'error'")
    if parse_scores(text) is None:
        raise RecordError(src, key, f"first line is not two scores: {text.split(chr(10), 1)[0][:60]!r}")
    return text


def record_from_json(obj: Any, src: Source) -> TrainRecord:
    """Validate one JudgeLM training object. The reference variant needs both ``reference.text`` and
    ``text_w_reference``; a record with neither trains without the reference."""
    if not isinstance(obj, dict):
        raise RecordError(src, None, f"expected a JSON object, got {type(obj).__name__}")
    ref = obj.get("reference")
    ref_text = ref.get("text") if isinstance(ref, dict) else ref
    if ref_text is not None and not isinstance(ref_text, str):
        raise RecordError(src, "reference.text", f"expected a string, got {type(ref_text).__name__}")
    has_ref = bool(ref_text and ref_text.strip())
    if has_ref != (obj.get("text_w_reference") is not None):
        missing = "text_w_reference" if has_ref else "reference.text"
        raise RecordError(src, missing, "missing (a with-reference sample needs the reference and its judgement)")
    return TrainRecord(
        question_id=require_id(obj, "question_id", src),
        question=require_text(obj, "question_body", src),
        answers=(require_text(obj, "answer1_body", src), require_text(obj, "answer2_body", src)),
        answer_ids=(obj.get("answer1_id"), obj.get("answer2_id")),
        model_ids=(obj.get("answer1_model_id"), obj.get("answer2_model_id")),
        metadata=(obj.get("answer1_metadata"), obj.get("answer2_metadata")),
        text=_judgement(obj, "text", src),
        reference=ref_text if has_ref else None,
        text_w_reference=_judgement(obj, "text_w_reference", src) if has_ref else None,
    )


def load_train_records(paths: Sequence[str | Path], skip_invalid: bool) -> Loaded:
    """All records of ``paths`` in order; question ids must be unique across the files."""
    def items():
        for p in paths:
            if not Path(p).is_file():
                raise FileNotFoundError(f"training file not found: {p}")
            yield from iter_json_objects(p)
    return load_objects(items(), record_from_json, skip_invalid)


def split_holdout(records: Sequence[TrainRecord], n: int, seed: int) -> tuple[list[TrainRecord], list[TrainRecord]]:
    """(training records, ``n`` held-out records): a seeded pick, each side in the files' order."""
    if n >= len(records):
        raise ValueError(f"data.holdout={n} leaves no training records (of {len(records)})")
    held = set(np.random.default_rng([seed, 3]).permutation(len(records))[:n].tolist()) if n else set()
    return ([r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held])


# --- augmentation -------------------------------------------------------------------------------------------------

# "Assistant 1 and 2" names both and stays as it is; JudgeLM's literal replace turns it into "Assistant 2 and 2".
_ASSISTANT = re.compile(r"Assistant 1 and 2|Assistant 2 and 1|Assistant ([12])\b")


def swap_judgement(text: str) -> str:
    """The judgement as it reads with the answers in the other order: first-line scores exchanged and
    "Assistant 1"/"Assistant 2" exchanged in the explanation (other phrasings are left alone, as in JudgeLM)."""
    first, sep, rest = text.partition("\n")
    s1, s2 = first.replace(",", " ").split(" ")
    rest = _ASSISTANT.sub(lambda m: m.group(0) if m.group(1) is None else f"Assistant {3 - int(m.group(1))}", rest)
    return f"{s2} {s1}{sep}{rest}"


def swapped(r: TrainRecord) -> TrainRecord:
    """A new record with the answers (and their ids, models, metadata) in the other order."""
    return replace(
        r, answers=r.answers[::-1], answer_ids=r.answer_ids[::-1], model_ids=r.model_ids[::-1],
        metadata=r.metadata[::-1], text=swap_judgement(r.text),
        text_w_reference=None if r.text_w_reference is None else swap_judgement(r.text_w_reference))


@dataclass(frozen=True)
class View:
    """What one draw makes of a record: the prompt the judge reads and the judgement it must write."""

    prompt: str
    target: str
    with_reference: bool
    swapped: bool


def draw_view(r: TrainRecord, seed: int, epoch: int, index: int, ref_prob: float, swap_prob: float) -> View:
    rng = np.random.default_rng([seed, 1, epoch, index])
    use_ref, swap = rng.random() < ref_prob, rng.random() < swap_prob  # always two draws: stable streams
    use_ref = use_ref and r.reference is not None
    if swap:
        r = swapped(r)
    reference = r.reference if use_ref else None
    target = r.text_w_reference if use_ref else r.text
    return View(build_prompt(r.question, r.answers, reference), target, use_ref, swap)


# --- tokens -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    input_ids: list[int]
    labels: list[int]  # IGNORE on the prompt, the token ids on the judgement and EOS


class SampleBuilder:
    """Turns ``(epoch, index)`` into a tokenised sample, or ``None`` when it does not fit."""

    def __init__(self, records: Sequence[TrainRecord], tokenizer, max_length: int, seed: int,
                 ref_prob: float, swap_prob: float):
        self.records, self.tok, self.max_length, self.seed = records, tokenizer, max_length, seed
        self.ref_prob, self.swap_prob = ref_prob, swap_prob
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token: the judge could never learn to stop")

    def view(self, epoch: int, index: int) -> View:
        return draw_view(self.records[index], self.seed, epoch, index, self.ref_prob, self.swap_prob)

    def size_hint(self, epoch: int, index: int) -> int:
        """Characters of prompt and target: orders samples by length without tokenising them."""
        v = self.view(epoch, index)
        return len(v.prompt) + len(v.target)

    def encode_prompt(self, prompt: str) -> list[int]:
        """Prompt ids as the judge sees them at inference: with BOS (JudgeLM forces it even if the tokenizer
        would not add it)."""
        return encode_with_bos(self.tok, [prompt])[0]

    def build(self, epoch: int, index: int) -> Sample | None:
        v = self.view(epoch, index)
        prompt_ids = self.encode_prompt(v.prompt)
        # Tokenised together, as JudgeLM does, so the first target token is what the tokenizer produces
        # after "### Response:" (a SentencePiece tokenizer would add a space to a target tokenised alone).
        full = self.encode_prompt(v.prompt + v.target) + [self.tok.eos_token_id]
        n = len(prompt_ids)
        if full[:n] != prompt_ids:
            raise ValueError(f"record {self.records[index].question_id}: the tokenizer merges the end of the "
                             "prompt with the judgement, so the label mask would be off")
        if len(full) > self.max_length:
            return None
        return Sample(full, [IGNORE] * n + full[n:])


def collate(samples: Sequence[Sample | None], pad_id: int, bos_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch, without an attention mask: in a causal model no real token attends to the padding
    after it, and padded positions carry no label. Dropped samples leave no row; a batch left empty becomes one
    all-ignored row, so every process still runs the same number of forward passes (ZeRO-3 gathers weights
    collectively)."""
    kept = [s for s in samples if s is not None] or [Sample([bos_id], [IGNORE])]
    width = max(len(s.input_ids) for s in kept)
    ids = torch.full((len(kept), width), pad_id, dtype=torch.long)
    labels = torch.full((len(kept), width), IGNORE, dtype=torch.long)
    for i, s in enumerate(kept):
        ids[i, : len(s.input_ids)] = torch.tensor(s.input_ids)
        labels[i, : len(s.labels)] = torch.tensor(s.labels)
    return {"input_ids": ids, "labels": labels}


# --- which samples each step uses --------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchPlan:
    """The sample schedule: a pure function of the step, shared by every process and every restart."""

    n_records: int
    global_batch: int
    micro_batch: int
    world_size: int
    seed: int

    @property
    def steps_per_epoch(self) -> int:
        # The last partial global batch of an epoch is left out (a different one each epoch, as it is reshuffled).
        return self.n_records // self.global_batch

    @property
    def grad_accum(self) -> int:
        return self.global_batch // (self.micro_batch * self.world_size)

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def step_indices(self, step: int) -> np.ndarray:
        epoch, i = divmod(step, self.steps_per_epoch)
        perm = np.random.default_rng([self.seed, 2, epoch]).permutation(self.n_records)
        return perm[i * self.global_batch: (i + 1) * self.global_batch]

    def micro_batches(self, step: int, rank: int, length: Callable[[int], int]) -> list[list[int]]:
        """Record indices of this rank's micro-batches for ``step``. The step's samples are sorted by
        ``length(index)`` (a cheap size estimate) and cut into consecutive micro-batches of similar lengths,
        which are dealt round-robin to the ranks so that every rank gets short and long ones."""
        idx = self.step_indices(step)
        order = idx[np.argsort([length(int(i)) for i in idx], kind="stable")]
        slots = [order[k * self.micro_batch: (k + 1) * self.micro_batch].tolist()
                 for k in range(self.grad_accum * self.world_size)]
        return slots[rank::self.world_size]
