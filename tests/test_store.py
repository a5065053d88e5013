"""The verdict store under concurrent writers: shards own whole chunks, so no unit is ever lost."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from judgelm.data.records import Record
from judgelm.judging.store import NO_LABEL, ChunkVerdicts, DamagedStore, VerdictStore, plan_chunks
from judgelm.judging.units import plan_units

REPO = Path(__file__).resolve().parents[1]


def make_store(path, n_records=1000, chunk_units=64, n_shards=4):
    records = [Record(question_id=i, question=f"q{i} é✓中文", answers=(f"a{i}", f"b{i}"), label=(1, 0, -1, None)[i % 4],
                      reference="ref" if i % 3 == 0 else None) for i in range(n_records)]
    plan = plan_units(records, reference="both")
    return VerdictStore.create(path, records, plan, n_scores=2, chunk_units=chunk_units, attrs={"n_shards": n_shards})


def expected_scores(units):
    return np.stack([units % 10, (units * 7) % 10], axis=1).astype(np.float32)


def write_shard(path, shard, n_shards):
    """Body of one writer process: write every owned chunk with values derived from the unit ids."""
    store = VerdictStore(path, mode="r+")
    for c in store.shard_chunks(shard, n_shards):
        sl = store.chunk_slice(c)
        units = np.arange(sl.start, sl.stop)
        n = len(units)
        store.write_chunk(c, ChunkVerdicts(scores=expected_scores(units), status=np.zeros(n, np.int8),
                                           text=[f"unit {u} ✓" for u in units], prompt_tokens=units.astype(np.int32),
                                           new_tokens=np.ones(n, np.int32), truncated=np.zeros(n, bool)), attempt=shard)


def test_layout_every_chunk_has_one_owner(tmp_path):
    store = make_store(tmp_path / "s.zarr")
    assert store.n_units == 1000 * 2 + 334 * 2  # both orders, plus with-reference units where a reference exists
    owned = [c for k in range(7) for c in store.shard_chunks(k, 7)]
    assert sorted(owned) == list(range(store.n_chunks))
    assert sum(store.shard_units(k, 7) for k in range(7)) == store.n_units
    inputs = store.chunk_inputs(0)
    assert inputs["question"][0] == "q0 é✓中文" and inputs["reference"][0] == "ref"
    assert store.records("label")[3] == NO_LABEL
    with pytest.raises(FileExistsError):
        make_store(tmp_path / "s.zarr")


def test_four_processes_write_one_store_without_losing_a_unit(tmp_path):
    path = tmp_path / "s.zarr"
    store = make_store(path)
    procs = [subprocess.Popen([sys.executable, "-c", f"from tests.test_store import write_shard; "
                               f"write_shard({str(path)!r}, {k}, 4)"], cwd=REPO) for k in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    store = VerdictStore(path)
    units = np.arange(store.n_units)
    assert store.done().all()
    np.testing.assert_array_equal(store.verdicts("scores"), expected_scores(units))
    assert store.verdicts("text").tolist() == [f"unit {u} ✓" for u in units]
    np.testing.assert_array_equal(store.verdicts("prompt_tokens"), units)
    # each unit was written by the process owning its chunk
    owners = np.concatenate([np.full(store.shard_units(k, 4), k) for k in range(4)])
    np.testing.assert_array_equal(store.verdicts("attempt"), owners)


def test_write_chunk_rejects_a_wrong_shape(tmp_path):
    store = make_store(tmp_path / "s.zarr", n_records=10, chunk_units=8)
    with pytest.raises(ValueError, match="chunk 0 holds 8 units"):
        store.write_chunk(0, ChunkVerdicts(scores=np.zeros((3, 2)), status=np.zeros(3), text=[""] * 3,
                                           prompt_tokens=np.zeros(3), new_tokens=np.zeros(3),
                                           truncated=np.zeros(3, bool)), attempt=0)
    assert not store.done().any()


@pytest.mark.parametrize("units, shards, limit, expected", [
    (1998, 4, 128, (125, 4)),  # 16 chunks, 4 per shard
    (10_000, 64, 128, (79, 64)),  # 127 chunks: every shard 1 or 2, none idle
    (10, 6, 128, (2, 5)),  # fewer units than shards x 2: fewer shards, not idle tasks
    (1, 4, 128, (1, 1)),
])
def test_chunks_are_spread_evenly_over_shards(units, shards, limit, expected):
    chunk, used = plan_chunks(units, shards, limit)
    assert (chunk, used) == expected and chunk <= limit
    n_chunks = -(-units // chunk)
    per_shard = [(k + 1) * n_chunks // used - k * n_chunks // used for k in range(used)]
    assert min(per_shard) >= 1 and max(per_shard) - min(per_shard) <= 1
    with pytest.raises(ValueError):
        plan_chunks(units, 0, limit)


def written_store(path, n_shards=4):
    make_store(path, n_records=100, chunk_units=16, n_shards=n_shards)
    for k in range(n_shards):
        write_shard(path, k, n_shards)
    return VerdictStore(path, mode="r+")


def test_damaged_and_lost_chunks_are_named_then_repaired_into_not_judged(tmp_path):
    store = written_store(tmp_path / "s.zarr")
    before = store.verdicts("scores")
    assert store.verify() == [] and store.attrs["checksums"] == "crc32c"
    store._chunk_file("verdicts/scores", 3).write_bytes(b"16 bytes garbage")  # as a bad disk block would
    store._chunk_file("verdicts/truncated", 5).unlink()  # all False: a file zarr alone would not have missed
    store._chunk_file("verdicts/done", 9).write_bytes(b"\0" * 40)
    with pytest.raises(DamagedStore) as e:
        store.columns()
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{store.path}: 3 damaged chunks: ")
    assert "verdicts/scores chunk 3 (units 48-63, shard 0): checksum mismatch" in msg
    assert "verdicts/truncated chunk 5 (units 80-95, shard 1): chunk file missing" in msg
    assert "verdicts/done chunk 9 (units 144-159, shard 2): " in msg and msg.endswith("re-judges exactly these units")
    with pytest.raises(DamagedStore):
        store.verdicts("scores")
    assert not store.chunk_done(9) and store.chunk_done(3)  # an unreadable commit marker is no commit
    assert [(d.array, d.chunk) for d in store.repair(store.verify())] == [
        ("verdicts/done", 9), ("verdicts/scores", 3), ("verdicts/truncated", 5)]
    assert store.verify() == []
    done = store.done()
    damaged = np.r_[48:64, 80:96, 144:160]
    assert not done[damaged].any() and done.sum() == store.n_units - len(damaged)
    assert np.isnan(store.verdicts("scores")[damaged]).all()
    undamaged = np.setdiff1d(np.arange(store.n_units), damaged)
    np.testing.assert_array_equal(store.verdicts("scores")[undamaged], before[undamaged])
    write_shard(store.path, 0, 4)  # the owners judge again: the store is whole, as if never damaged
    write_shard(store.path, 1, 4)
    write_shard(store.path, 2, 4)
    np.testing.assert_array_equal(VerdictStore(store.path).verdicts("scores"), before)


def test_damaged_inputs_are_named_and_not_repaired(tmp_path):
    store = written_store(tmp_path / "s.zarr")
    path = store.path / "records" / "question" / "c" / "0"
    path.write_bytes(path.read_bytes()[:-3])  # truncated
    damage = store.verify()
    assert [str(d) for d in damage] == ["records/question chunk 0 (records 0-99): checksum mismatch"]
    with pytest.raises(DamagedStore, match="the run's inputs are damaged: create the run again"):
        store.chunk_inputs(0)
    assert store.repair(damage) == []


def test_a_store_made_before_checksums_still_reads_and_its_undecodable_chunks_are_found(tmp_path):
    records = [Record(question_id=i, question=f"q{i}", answers=("a", "b")) for i in range(40)]
    store = VerdictStore.create(tmp_path / "old.zarr", records, plan_units(records), n_scores=2, chunk_units=16,
                                attrs={"n_shards": 2}, checksums=False)
    for k in range(2):
        write_shard(store.path, k, 2)
    store = VerdictStore(store.path)
    assert not store.checksummed and store.verify() == [] and store.done().all()
    store._chunk_file("verdicts/text", 1).write_bytes(b"16 bytes garbage")
    assert [str(d) for d in store.verify()][0].startswith("verdicts/text chunk 1 (units 16-31, shard 0): undecodable")
