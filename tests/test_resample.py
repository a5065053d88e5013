"""Extra samples and re-asks: seeded per (unit, draw), stored in full, independent of batches and shards."""

import numpy as np
import pytest

from judgelm.data.verdicts import Status
from judgelm.inference.config import EngineConfig, ModelConfig
from judgelm.inference.hf import HFEngine
from judgelm.inference.models import encode_with_bos, load_judge
from judgelm.judging.resample import ChunkDraws, extra_draws, noise_key
from judgelm.judging.shard import run_shard
from judgelm.judging.store import NOT_ASKED, VerdictStore
from judgelm.profiles.prompts import build_prompt
from tests.conftest import write_pairs
from tests.test_judge_run import new_run


def even_length(text, n):
    """A verdict format the random judge meets about half the time: the text parses iff its length is even."""
    return (float(len(text)),) * n if len(text) % 2 == 0 else None


@pytest.fixture(scope="module")
def engine(random_judge):
    model, tok, device, _ = load_judge(ModelConfig(path=str(random_judge)))
    return HFEngine(model, tok, device, EngineConfig(mode="full", max_new_tokens=6, temperature=0.0))


def chunk(engine, n=12, offset=0):
    ids = encode_with_bos(engine.tokenizer, [build_prompt(f"Q{i}" * (1 + i), ["a" * i, "b"]) for i in range(n)])
    return ChunkDraws(np.arange(n), np.arange(offset, offset + n), ids, n)


def test_re_asks_happen_only_after_a_failure_and_are_seeded(engine):
    draws = chunk(engine)
    primary = [g.text for g in engine.generate(list(draws.units), draws.prompts)]
    cfg = EngineConfig(parse_retries=3, retry_temperature=1.5)
    out = extra_draws(engine, cfg, draws, primary, 2, 1000, even_length)
    failed = np.array([even_length(t, 2) is None for t in primary])
    assert failed.any() and (~failed).any()
    status = out["retry_status"]
    assert (status[~failed] == NOT_ASKED).all()  # a parsed verdict is never asked again
    assert (status[failed, 0] != NOT_ASKED).all()
    for row in np.flatnonzero(failed):  # asked again until an attempt parses, then never again
        asked = status[row][status[row] != NOT_ASKED].tolist()
        assert asked == [Status.PARSE_FAILED] * (len(asked) - 1) + [asked[-1]]
        assert len(asked) == 3 or asked[-1] == Status.OK
        ok = status[row] == Status.OK
        assert np.isnan(out["retry_scores"][row][~ok]).all() and np.isfinite(out["retry_scores"][row][ok]).all()
    assert (status == Status.OK).any()
    again = extra_draws(engine, cfg, draws, primary, 2, 1000, even_length)
    for name in ("retry_status", "retry_text"):
        np.testing.assert_array_equal(out[name], again[name])
    # each attempt is its own stream: the re-asks of one unit differ from each other and from its other draws
    texts = out["retry_text"][failed]
    assert any(len({t for t in row if t}) > 1 for row in texts)
    assert engine.cfg.temperature == 0.0  # the re-asks' temperature was only borrowed


def test_sample_streams_are_distinct_per_unit_and_draw():
    keys = {noise_key(u, s, 50) for u in range(50) for s in range(4)}
    assert len(keys) == 200 and noise_key(7, 0, 50) == 7  # stream 0 is the unit's own key: the primary verdict
    with pytest.raises(ValueError, match="2\\*\\*31"):
        noise_key(5, 3, 1 << 30)


def judged(tmp_path, random_judge, data, name, shards, *args):
    rd = new_run(tmp_path, random_judge, data, name, f"shards={shards}", "store.chunk_units=5", "engine.samples=3",
                 "engine.temperature=0.9", "engine.parse_retries=2", *args)
    for k in range(shards):
        run_shard(rd.root, k, shards, threads=1)
    return VerdictStore(rd.store)


def test_samples_and_re_asks_do_not_depend_on_batch_size_or_shard_count(tmp_path, random_judge):
    data = write_pairs(tmp_path / "pairs.jsonl", 8)
    one = judged(tmp_path, random_judge, data, "one", 1, "engine.max_batch=64")
    three = judged(tmp_path, random_judge, data, "three", 3, "engine.max_batch=1")
    for name in ("sample_text", "sample_status", "sample_scores", "retry_text", "retry_status", "text"):
        np.testing.assert_array_equal(one.verdicts(name), three.verdicts(name), err_msg=name)
    samples = one.verdicts("sample_text")
    assert samples.shape == (16, 3)
    np.testing.assert_array_equal(samples[:, 0], one.verdicts("text"))  # sample 0 is the primary verdict
    assert all(len(set(row)) == 3 for row in samples)  # three different draws per unit
    # the random judge never writes a score line: every unit is re-asked the full two times
    assert (one.verdicts("retry_status") == Status.PARSE_FAILED).all()
