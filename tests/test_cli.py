"""The command-line tools: JudgeLM-file metrics agree with the pipeline."""

import json

import numpy as np
import pytest

from judgelm.cli import main
from judgelm.data.records import load_records
from judgelm.data.verdicts import parse_prediction
from judgelm.judging.store import ChunkVerdicts, VerdictStore
from judgelm.judging.units import plan_units
from judgelm.results.merge import compute_metrics
from judgelm.scoring.judgelm_files import metrics_from_judgelm_files
from tests.conftest import write_pairs


def test_judgelm_files_give_the_same_metrics_as_the_store(tmp_path):
    """Write the same verdicts as a store and as JudgeLM's three files; both routes must agree exactly."""
    rng = np.random.default_rng(1)
    data = write_pairs(tmp_path / "d.jsonl", 200)
    recs = load_records(data).records
    plan = plan_units(recs)
    store = VerdictStore.create(tmp_path / "s.zarr", recs, plan, 2, chunk_units=400, attrs={"n_shards": 1})
    # What a judge writes, edge cases included: commas, a leading space, two spaces, no score line at all.
    shapes = ["{a} {b}\nexplanation", "{a},{b}\n", " {a} {b}\n", "{a}  {b}\n", "{a}, {b}\n", "garbled", "{a} {b}"]
    texts = [shapes[i % len(shapes)].format(a=a, b=b) for i, (a, b) in enumerate(rng.integers(1, 11, (len(plan), 2)))]
    parsed = [parse_prediction(t) for t in texts]  # exactly what a shard stores
    scores = np.array([p if p else (np.nan, np.nan) for p in parsed], dtype=np.float32)
    store.write_chunk(0, ChunkVerdicts(scores=scores, status=np.isnan(scores[:, 0]).astype(np.int8), text=texts,
                                       prompt_tokens=np.zeros(len(plan)), new_tokens=np.zeros(len(plan)),
                                       truncated=np.zeros(len(plan), bool)), attempt=0)
    gt = tmp_path / "gt.jsonl"
    seq = tmp_path / "seq.jsonl"
    rev = tmp_path / "rev.jsonl"
    gt.write_text("".join(json.dumps({"question_id": i, "text": json.loads(line)["text"]}) + "\n"
                          for i, line in enumerate(data.read_text().splitlines())))
    for path, order in ((seq, 0), (rev, 1)):
        path.write_text("".join(json.dumps({"question_id": int(r), "pred_text": texts[u].strip()}) + "\n"
                                for u, (r, o) in enumerate(zip(plan.record, plan.order)) if o == order))
    ours = compute_metrics(VerdictStore(tmp_path / "s.zarr"))["groups"]["without_reference"]
    theirs = metrics_from_judgelm_files(gt, seq, rev)
    for key in ("agreement", "precision", "recall", "f1", "consistency", "prefer_before", "prefer_after",
                "delta_bias", "total_bias", "total_num"):
        assert ours[key] == pytest.approx(theirs[key]), key
    assert main(["judgelm-metrics", "--gt", str(gt), "--seq", str(seq), "--rev", str(rev)]) == 0


def test_judgelm_files_must_align(tmp_path):
    (tmp_path / "gt.jsonl").write_text('{"question_id": 1, "text": "8 7\\n"}\n{"question_id": 2, "text": "1 7\\n"}\n')
    (tmp_path / "p.jsonl").write_text('{"question_id": 1, "pred_text": "8 7"}\n')
    with pytest.raises(ValueError, match="has 2 rows but"):
        metrics_from_judgelm_files(tmp_path / "gt.jsonl", tmp_path / "p.jsonl")
    (tmp_path / "p.jsonl").write_text('{"question_id": 1, "pred_text": "8 7"}\n{"question_id": 3, "pred_text": "8"}\n')
    with pytest.raises(ValueError, match="row 2: question_id 2"):
        metrics_from_judgelm_files(tmp_path / "gt.jsonl", tmp_path / "p.jsonl")
