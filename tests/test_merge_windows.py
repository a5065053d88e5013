"""The merge reads a store window by window into distinct rows with counts: the metrics are those of the whole store
read at once, whatever the windows, for pairs (both orders, with and without reference, several benchmarks, several
turns), single-answer and N-answer grading, complete and partial stores; and a window refuses a damaged or
incomplete store exactly as the whole read does."""

import json
import shutil

import numpy as np
import pytest
import zarr

import judgelm.judging.store as store_layout
import judgelm.results.merge as merge
from judgelm.data.records import Record, Turn
from judgelm.data.verdicts import Status
from judgelm.judging.store import ChunkVerdicts, DamagedStore, IncompleteStore, VerdictStore
from judgelm.judging.units import plan_units
from judgelm.results.tally import factorize

SUBSETS = ["pandalm", "llmbar/Natural", "llmbar/Adversarial/Neighbor", "rewardbench/alpacaeval-easy",
           "rewardbench/mt-bench-hard", "judgebench/gpt", "prometheus", "mine", ""]


def judged_store(path, mode: str, n_records: int, seed: int, partial: bool = False, n_answers: int = 2,
                 turns: int = 1):
    rng = np.random.default_rng(seed)
    n_scores = {"pair": 2, "single": 1}.get(mode, n_answers)
    records = []
    for i in range(n_records):
        ref = "r" if rng.random() < 0.3 else None
        gt = tuple(float(v) for v in rng.integers(1, 11, n_scores)) if rng.random() < 0.8 else None
        records.append(Record(question_id=i, question="q", answers=tuple("a" * int(rng.integers(0, 9))
                                                                          for _ in range(n_answers)),
                              reference=ref, label=int(rng.integers(-1, 2)) if rng.random() < 0.2 else None,
                              gt_scores=gt, gt_scores_w_reference=gt if ref else None, judged_w_reference=bool(ref),
                              subset=str(rng.choice(SUBSETS)), category=str(rng.choice(["", "math", "chat"])),
                              later_turns=tuple(Turn("q2", ("x", "yy")) for _ in range(int(rng.integers(0, turns))))))
    plan = plan_units(records, mode)
    store = VerdictStore.create(path, records, plan, n_scores, chunk_units=13, attrs={"n_shards": 3, "mode": mode})
    for c in range(store.n_chunks):
        if partial and c % 3 == 1:
            continue
        sl = store.chunk_slice(c)
        n = sl.stop - sl.start
        scores = rng.integers(1, 11, (n, n_scores)).astype(np.float32)
        status = np.full(n, Status.OK, dtype=np.int8)
        failed, too_long = rng.random(n) < 0.1, rng.random(n) < 0.05
        scores[failed | too_long] = np.nan
        status[failed], status[too_long] = Status.PARSE_FAILED, Status.PROMPT_TOO_LONG
        store.write_chunk(c, ChunkVerdicts(scores=scores, status=status, text=[""] * n, prompt_tokens=np.zeros(n),
                                           new_tokens=np.zeros(n), truncated=rng.random(n) < 0.1,
                                           cached=rng.random(n) < 0.2), attempt=0)
    return store


@pytest.mark.parametrize("mode,partial,turns", [("pair", False, 1), ("pair", True, 1), ("pair", False, 3),
                                                ("single", False, 1), ("multi", False, 1)])
def test_a_store_read_in_windows_merges_to_the_metrics_of_the_whole_store(tmp_path, monkeypatch, mode, partial,
                                                                          turns):
    # Records' texts and short columns in chunks of their own sizes, neither a multiple of the other nor of a window.
    monkeypatch.setattr(store_layout, "_RECORD_CHUNK", 16)
    monkeypatch.setattr(store_layout, "_RECORD_META_CHUNK", 24)
    store = judged_store(tmp_path / "s.zarr", mode, 80, seed=7, partial=partial, n_answers=3 if mode == "multi" else 2,
                         turns=turns)
    assert store.attrs["records_in_unit_order"]
    whole = tmp_path / "whole.zarr"
    shutil.copytree(store.path, whole)
    zarr.open_group(str(whole), mode="r+").attrs["records_in_unit_order"] = False  # as stores made before: whole
    expected = json.dumps(merge.compute_metrics(VerdictStore(whole), allow_partial=True), sort_keys=True)
    for window in (3, 64):
        monkeypatch.setattr(merge, "WINDOW_UNITS", window)
        windows = list(VerdictStore(store.path).column_windows(window))
        assert sum(len(w.order) for w in windows) == store.n_units
        assert json.dumps(merge.compute_metrics(VerdictStore(store.path), allow_partial=True),
                          sort_keys=True) == expected
    assert store.n_turns == turns


def test_windows_refuse_a_damaged_or_incomplete_store_as_the_whole_read_does(tmp_path, monkeypatch):
    monkeypatch.setattr(merge, "WINDOW_UNITS", 16)
    store = judged_store(tmp_path / "s.zarr", "pair", 120, seed=3)
    assert store.attrs["records_in_unit_order"] and store.n_chunks > 8
    store._chunk_file("verdicts/scores", 2).write_bytes(b"16 bytes garbage")  # as a bad disk block would
    store._chunk_file("verdicts/truncated", 7).unlink()  # committed, all False: zarr alone would read fill values
    with pytest.raises(DamagedStore) as whole:
        VerdictStore(store.path).columns()
    with pytest.raises(DamagedStore) as windowed:
        merge.compute_metrics(VerdictStore(store.path))
    assert str(windowed.value) == str(whole.value)
    assert "verdicts/scores chunk 2" in str(whole.value) and "verdicts/truncated chunk 7" in str(whole.value)

    partial = judged_store(tmp_path / "p.zarr", "pair", 120, seed=3, partial=True)
    with pytest.raises(IncompleteStore, match=r"units are not judged; missing in shard 0 \(\d+ units\)"):
        merge.compute_metrics(VerdictStore(partial.path))


@pytest.mark.parametrize("dtype", [object, np.dtypes.StringDType()])
@pytest.mark.parametrize("runs", [True, False])
def test_strings_factorize_to_codes_that_give_them_back(dtype, runs):
    rng = np.random.default_rng(3)
    words = rng.choice(["pandalm", "llmbar/Natural", "", "mine", "b\u00e9"], 500)
    c = np.array(np.sort(words) if runs else words, dtype=dtype)
    values, codes = factorize(c)
    assert values.dtype == object and len(set(values.tolist())) == len(values)
    assert values[codes].tolist() == c.tolist()
    values, codes = factorize(c[:0])
    assert len(values) == 0 and len(codes) == 0
