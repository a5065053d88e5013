"""Judge quality while training: the current weights judge a held-out set with the project's own engine and metrics.

Every pair is judged in both answer orders with JudgeLM's prompt in fast mode (the score line, as JudgeLM's own
evaluation), by ``judgelm.inference.hf.HFEngine`` on the model being trained, and scored with
``judgelm.scoring.metrics``: agreement, precision/recall/F1, consistency, Cohen's kappa, and the parse failures
(which count as ties, as in JudgeLM). It runs in-process: every rank judges every ``world``-th unit on its own
device and the verdicts are summed across ranks, so a node's GPUs share the work and nothing is submitted. Every
rank must hold the whole model for that (one process, ZeRO-2, LoRA/QLoRA without ZeRO-3); a ZeRO-3 run is
refused with the alternative (``make judge`` on its exported checkpoints).

Judging changes neither the weights nor any random state (greedy decoding, under ``fork_rng``), so a run with
evaluations has the same loss curve as one without.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from judgelm.data.benchmarks import load_dataset
from judgelm.data.records import Record
from judgelm.data.verdicts import parse_scores, win
from judgelm.inference.config import EngineConfig
from judgelm.inference.hf import HFEngine
from judgelm.inference.prepare import JUDGELM, fit_prompt
from judgelm.profiles.prompts import Mode
from judgelm.scoring.metrics import cohen_kappa, judgelm_metrics
from judgelm.train import distributed
from judgelm.train.adapters import inner_model
from judgelm.train.config import EvalConfig
from judgelm.train.data import TrainRecord


def holdout_record(r: TrainRecord) -> Record:
    """A held-out training record as a judging record: its (GPT-4) judgements are the ground truth."""
    ref = r.text_w_reference is not None
    return Record(question_id=r.question_id, question=r.question, answers=r.answers, reference=r.reference,
                  gt_scores=parse_scores(r.text), judged_w_reference=ref,
                  gt_scores_w_reference=parse_scores(r.text_w_reference) if ref else None, subset="holdout")


def eval_records(cfg: EvalConfig, holdout: list[TrainRecord]) -> list[Record]:
    records = [holdout_record(r) for r in holdout] if cfg.data == "holdout" else load_dataset(cfg.data).records
    labelled = [r for r in records if len(r.answers) == 2 and r.gt_label(cfg.with_reference) is not None]
    return labelled[: cfg.limit] if cfg.limit else labelled


@dataclass
class ValidationSet:
    """The pairs that fit the model's context, with both orders' token ids, and their ground truth."""

    gt: np.ndarray  # per pair: 1, 0, -1
    ids: list[list[int]]  # unit 2k: pair k as given, unit 2k + 1: answers swapped
    too_long: int  # pairs left out: even with their answers cut the prompt would not fit

    @classmethod
    def build(cls, records: list[Record], tokenizer, context_length: int, cfg: EvalConfig) -> ValidationSet:
        limit = context_length - EngineConfig(mode="fast").new_tokens()
        gt, ids, too_long = [], [], 0
        for r in records:
            reference = r.reference if cfg.with_reference else None
            fitted = [fit_prompt(tokenizer, r.question, list(a), reference, Mode.PAIR, limit)
                      for a in (r.answers, r.answers[::-1])]
            if None in fitted:
                too_long += 1
                continue
            gt.append(r.gt_label(cfg.with_reference))
            ids += [f[0] for f in fitted]
        return cls(np.array(gt, dtype=np.int64), ids, too_long)

    def judge(self, model, tokenizer, device: torch.device, cfg: EvalConfig) -> dict[str, float | int]:
        """Collective: every rank judges its share, the labels are summed across ranks, every rank gets the
        metrics."""
        rank, world = distributed.rank_and_world()
        mine = list(range(rank, len(self.ids), world))
        verdicts = torch.zeros(len(self.ids), 2, dtype=torch.float64)  # [label + 2 (0: not mine), parse failed]
        if mine:
            with judging_mode(model):
                engine = HFEngine(inner_model(model), tokenizer, device,
                                  EngineConfig(mode="fast", batch_tokens=cfg.batch_tokens))
                gens = engine.generate(mine, [self.ids[i] for i in mine])
            for i, g in zip(mine, gens):
                scores = JUDGELM.parse(g.text, Mode.PAIR, 2)
                verdicts[i] = torch.tensor([win(scores) + 2, scores is None], dtype=torch.float64)
        verdicts = distributed.all_reduce_sum(verdicts).numpy()
        labels = verdicts[:, 0].astype(np.int64) - 2
        seq, rev = labels[0::2], labels[1::2]
        out = judgelm_metrics(self.gt, seq, rev)
        out["kappa"] = cohen_kappa(self.gt, seq)
        out["parse_failures"] = int(verdicts[:, 1].sum())
        out["too_long"] = self.too_long
        return out


@contextlib.contextmanager
def judging_mode(model):
    """Eval mode (no dropout), the KV cache on, and every random state as it was before, for the block."""
    inner = inner_model(model)
    was_training, use_cache = model.training, inner.config.use_cache
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        model.eval()
        inner.config.use_cache = True
        try:
            yield
        finally:
            inner.config.use_cache = use_cache
            model.train(was_training)
