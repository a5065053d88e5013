"""JudgeLM's metrics from JudgeLM's own files, to check old results against ours.

Inputs are what JudgeLM's scripts read: a ground-truth JSONL with ``text`` (GPT-4's judgement), and prediction
JSONL files with ``pred_text`` for the original and the reversed answer order, aligned row by row (JudgeLM
zips them; we refuse files of different lengths or with different ``question_id`` sequences instead of
silently dropping rows). Ground truth that does not parse is dropped; prediction failures count as ties.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from judgelm.data.records import RecordError, iter_dicts
from judgelm.data.verdicts import parse_scores, win
from judgelm.scoring.metrics import judgelm_metrics


def read_jsonl(path: str | Path, key: str) -> list[dict]:
    """The rows of one of JudgeLM's files, each with a string ``key``."""
    rows = []
    for src, row in iter_dicts(path):
        if not isinstance(row.get(key), str):
            raise RecordError(src, key, "missing or not a string")
        rows.append(row)
    return rows


def _check_aligned(a: list[dict], b: list[dict], a_path, b_path) -> None:
    if len(a) != len(b):
        raise ValueError(f"{a_path} has {len(a)} rows but {b_path} has {len(b)}; JudgeLM aligns them by position")
    ids_a = [r.get("question_id") for r in a]
    ids_b = [r.get("question_id") for r in b]
    if None not in ids_a and None not in ids_b and ids_a != ids_b:
        i = next(k for k, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y)
        raise ValueError(f"row {i + 1}: question_id {ids_a[i]!r} in {a_path} but {ids_b[i]!r} in {b_path}")


def metrics_from_judgelm_files(gt_path: str | Path, seq_path: str | Path,
                               rev_path: str | Path | None = None) -> dict:
    gt_rows = read_jsonl(gt_path, "text")
    seq_rows = read_jsonl(seq_path, "pred_text")
    _check_aligned(gt_rows, seq_rows, gt_path, seq_path)
    rev_rows = None
    if rev_path is not None:
        rev_rows = read_jsonl(rev_path, "pred_text")
        _check_aligned(gt_rows, rev_rows, gt_path, rev_path)
    gt = [parse_scores(r["text"]) for r in gt_rows]
    keep = np.array([g is not None for g in gt])
    y_true = np.array([win(g) for g in gt])[keep]
    seq = np.array([win(parse_scores(r["pred_text"])) for r in seq_rows])[keep]
    rev = None if rev_rows is None else np.array([win(parse_scores(r["pred_text"])) for r in rev_rows])[keep]
    out = judgelm_metrics(y_true, seq, rev)
    out["ground_truth_unparsed"] = int((~keep).sum())
    return out
