"""The verdict cache: what hits and what misses, and concurrent writers on one directory losing nothing."""

import subprocess
import sys
from pathlib import Path

from judgelm.judging.config import JudgeConfig
from judgelm.judging.verdict_cache import (
    CACHE_DIR,
    Entry,
    VerdictCache,
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
    assert len(cache.entries) == 60 + 3 * 60
    assert all(cache.get(cache.key([r, 0])).text == f"shared {r}" for r in range(60))
    assert all(cache.get(cache.key([r, 1, w])) == Entry(f"own {w} {r}", [w, r]) for w in range(3) for r in range(60))
    assert not list(root.glob(".*"))  # no temporary file left behind
