"""The verdict cache: what hits and what misses, and concurrent writers on one directory losing nothing."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from judgelm.judging.config import JudgeConfig
from judgelm.judging.verdict_cache import (
    CACHE_DIR,
    CacheFiles,
    Entry,
    VerdictCache,
    cache_key,
    decoding_settings,
    judge_fingerprint,
    open_cache,
)
from judgelm.profiles.base import Prompt

DECODING = decoding_settings(JudgeConfig())
REPO = Path(__file__).resolve().parents[1]


def test_same_judge_decoding_and_prompt_hit_any_change_misses(tmp_path):
    root = tmp_path / CACHE_DIR
    cache = VerdictCache.open(root, "judge-a", DECODING)
    prompt = Prompt("Which answer is better?")
    cache.stage(cache.key([1, 5, 9], prompt), Entry("8 3", [23, 7, 12]))
    assert cache.flush() is not None and cache.flush() is None  # nothing staged: no empty file

    def lookup(fingerprint, decoding, ids, p=prompt):
        cache = VerdictCache.open(root, fingerprint, decoding)
        return cache.get(cache.key(ids, p))

    assert lookup("judge-a", DECODING, [1, 5, 9]) == Entry("8 3", [23, 7, 12])
    assert lookup("judge-a", DECODING, [1, 5, 10]) is None  # other prompt tokens
    assert lookup("judge-a", DECODING, [1, 5, 9], Prompt("Which answer is better?", system="Be fair.")) is None
    assert lookup("judge-b", DECODING, [1, 5, 9]) is None  # another judge
    assert lookup("judge-a", {**DECODING, "mode": "full", "max_new_tokens": 512}, [1, 5, 9]) is None


def test_fingerprint_follows_the_weights(tmp_path):
    judge = tmp_path / "judge"
    judge.mkdir()
    (judge / "config.json").write_text("{}")
    (judge / "model.safetensors").write_bytes(b"\0" * 1000)
    before = judge_fingerprint.__wrapped__(str(judge))
    assert judge_fingerprint.__wrapped__(str(judge)) == before
    (judge / "model.safetensors").write_bytes(b"\0" * 999 + b"\1")
    assert judge_fingerprint.__wrapped__(str(judge)) != before
    assert judge_fingerprint.__wrapped__("org/hub-judge") != judge_fingerprint.__wrapped__("org/other-judge")


def test_sampled_decoding_and_a_disabled_cache_are_not_cached(tmp_path):
    cfg = JudgeConfig()
    cfg.model.path = str(tmp_path)
    assert open_cache(tmp_path, cfg) is not None
    cfg.engine.temperature = 0.2
    assert open_cache(tmp_path, cfg) is None
    cfg.engine.temperature, cfg.verdict_cache = 0.0, False
    assert open_cache(tmp_path, cfg) is None


# A writer process commits an entry every writer commits too (same prompt, same verdict: the same file name, so
# the writers race on one os.replace target), then one of its own.
WRITER = """
import sys
from judgelm.judging.verdict_cache import Entry, VerdictCache
root, worker, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cache = VerdictCache.open(root, "judge", {decoding!r})
for r in range(rounds):
    cache.stage(cache.key([r, 0]), Entry(f"shared {{r}}", [r]))
    cache.flush()
    cache.stage(cache.key([r, 1, worker]), Entry(f"own {{worker}} {{r}}", [worker, r]))
    cache.flush()
"""


def test_concurrent_writers_lose_nothing(tmp_path):
    root = tmp_path / CACHE_DIR
    code = WRITER.format(decoding=DECODING)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(root), str(w), "60"], cwd=REPO) for w in range(3)]
    assert [p.wait() for p in procs] == [0, 0, 0]
    cache = VerdictCache.open(root, "judge", DECODING)  # every file parses: none was seen half-written
    assert len(cache) == 60 + 3 * 60
    assert all(cache.get(cache.key([r, 0])).text == f"shared {r}" for r in range(60))
    assert all(cache.get(cache.key([r, 1, w])) == Entry(f"own {w} {r}", [w, r]) for w in range(3) for r in range(60))
    assert not list(root.glob(".*"))  # no temporary file left behind


def four_files(root):
    """A cache of four committed chunks, ten entries each."""
    cache = VerdictCache.open(root, "judge", DECODING)
    files = []
    for f in range(4):
        for i in range(10):
            cache.stage(cache.key([f, i]), Entry(f"{f} {i}", [f, i]))
        files.append(cache.flush())
    return files


def test_unreadable_files_are_skipped_with_one_warning_each_and_set_aside(tmp_path, caplog):
    root = tmp_path / CACHE_DIR
    files = four_files(root)
    files[0].write_text('{"not": json\n')  # invalid JSON
    files[1].write_bytes(files[1].read_bytes()[:-30])  # truncated mid-line
    files[2].write_bytes(b"")  # zero-length
    other = CacheFiles(root, version=2).write({"f" * 64: {"text": "from a future version", "token_ids": [1]}})
    cache = VerdictCache.open(root, "judge", DECODING)
    got = {u.path.name: (u.entries, u.reason) for u in cache.unreadable}
    assert got == {files[0].name: (0, "its content does not match its checksum (overwritten or truncated)"),
                   files[1].name: (10, "its content does not match its checksum (overwritten or truncated)"),
                   files[2].name: (0, "empty"),
                   other.name: (1, "not a version-1 judgelm_verdict_cache file "
                                   "(header b'{\"judgelm_verdict_cache\": 2}\\n')")}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 4
    assert any(f"{files[1]} skipped: " in w and "10 entries lost" in w for w in warnings)
    assert sorted(p.name for p in (root / "unreadable").iterdir()) == sorted(got)
    assert sorted(root.glob("*.jsonl")) == [files[3]]
    assert len(cache) == 10 and cache.get(cache.key([3, 4])) == Entry("3 4", [3, 4])
    assert cache.get(cache.key([1, 4])) is None  # lost: its unit is judged again
    assert VerdictCache.open(root, "judge", DECODING).unreadable == []  # set aside once, by one reader


def test_files_written_before_headers_still_read(tmp_path):
    root = tmp_path / CACHE_DIR
    root.mkdir()
    key = cache_key("judge", DECODING, [1, 2])
    text = json.dumps({"key": key, "text": "7 2", "token_ids": [5], "top_ids": None, "top_logprobs": None}) + "\n"
    (root / f"{hashlib.sha256(text.encode()).hexdigest()}.jsonl").write_text(text)
    cache = VerdictCache.open(root, "judge", DECODING)
    assert cache.unreadable == [] and cache.get(key) == Entry("7 2", [5])


def test_an_unreadable_cache_file_costs_its_units_not_the_run(tmp_path, random_judge):
    from judgelm.judging.shard import run_shard
    from judgelm.judging.store import VerdictStore
    from judgelm.results.merge import merge_run
    from tests.conftest import write_pairs
    from tests.test_judge_run import new_run

    data = write_pairs(tmp_path / "pairs.jsonl", 8)
    first = new_run(tmp_path, random_judge, data, "first", "shards=1", "store.chunk_units=4")
    run_shard(first.root, 0, 1, threads=1)
    files = sorted((tmp_path / CACHE_DIR).glob("*.jsonl"))
    assert len(files) == 4  # one per committed chunk
    files[2].write_bytes(files[2].read_bytes()[:-10])  # cut short mid-line
    again = new_run(tmp_path, random_judge, data, "again", "shards=1", "store.chunk_units=4")
    run_shard(again.root, 0, 1, threads=1)
    a, b = VerdictStore(first.store), VerdictStore(again.store)
    assert b.cached().sum() == 16 - 4  # the four units of the lost file were judged, the rest came from the cache
    for name in ("scores", "status", "text"):
        np.testing.assert_array_equal(a.verdicts(name), b.verdicts(name), err_msg=name)
    m = merge_run(again.root)
    assert m["verdict_cache_unreadable"] == {"files": 1, "entries": 4}
    assert "1 unreadable verdict-cache file set aside (4 entries lost, their units judged)" in again.table.read_text()
    assert (tmp_path / CACHE_DIR / "unreadable" / files[2].name).exists()


def test_a_chunk_finds_what_the_chunk_before_staged_even_in_a_cache_that_was_empty(tmp_path):
    """An empty cache has length 0: the chunk before must still count as one (it once read as none, and the second
    chunk of a fresh cache judged again what the first had just judged, unless its commit had already ended)."""
    from judgelm.judging.shard import chunk_cache
    cache = VerdictCache(tmp_path, "judge", {})
    first = chunk_cache(cache)
    first.stage("key", Entry("8 7", [1, 2]))
    assert len(cache) == 0 and chunk_cache(cache, first).get("key") == Entry("8 7", [1, 2])
