"""The batched HF engine: same tokens as one-at-a-time generation, per-row stopping, bounded batches."""

import os
import signal
from dataclasses import replace

import numpy as np
import pytest
import torch

from judgelm.inference.config import EngineConfig, ModelConfig
from judgelm.inference.hf import HFEngine, cache_keyword, cpu_processes, decode_batches, newline_token_ids, plan_batches
from judgelm.inference.models import encode_with_bos, load_judge
from judgelm.inference.prepare import fit_prompt, prepare_chunk
from judgelm.inference.sampling import uniform_noise
from judgelm.profiles.prompts import Mode, build_prompt


@pytest.fixture(scope="module")
def judge(random_judge):
    return load_judge(ModelConfig(path=str(random_judge)))[:3]


@pytest.fixture(scope="module")
def eager_judge(random_judge):
    """The same weights with eager attention: decode steps attend under one mask over the widest row's slots, the
    path every GPU and every sliding-window model takes."""
    return load_judge(ModelConfig(path=str(random_judge), attn_implementation="eager"))[:3]


def prompts(tok, n=13):
    return encode_with_bos(tok, [build_prompt("Q" * (1 + 3 * i), ["a" * (i % 7), "b" * (i % 5)]) for i in range(n)])


def reference_generate(model, ids, stop_ids, max_new):
    """JudgeLM's way: one prompt per generate call, no padding."""
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=max_new, do_sample=False, eos_token_id=stop_ids, pad_token_id=0)
    return out[0, len(ids):].tolist()


@pytest.mark.parametrize("mode", ["fast", "full"])
def test_batched_generation_equals_one_prompt_at_a_time(judge, mode):
    model, tok, device = judge
    eng = HFEngine(model, tok, device, EngineConfig(mode=mode, max_new_tokens=12, max_batch=4))
    ids = prompts(tok)
    gens = eng.generate(list(range(len(ids))), ids)
    for g, p in zip(gens, ids):
        assert g.token_ids == reference_generate(model, p, eng.stop_ids.tolist(), 12)


def test_the_kv_cache_goes_by_the_models_own_name_without_a_deprecation_warning(judge):
    """transformers 5.24 renamed ``past_key_values`` to ``cache``: with the old name every shard's log filled with
    FutureWarnings; a model whose forward still takes ``past_key_values`` (vLLM's venv holds 5.19) gets that."""
    import warnings

    model, tok, device = judge
    eng = HFEngine(model, tok, device, EngineConfig(mode="full", max_new_tokens=6, max_batch=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        assert len(eng.generate([0, 1], prompts(tok, 2))) == 2

    class Older:
        def forward(self, input_ids=None, past_key_values=None, use_cache=None):
            pass
    assert cache_keyword(Older()) == "past_key_values"


def test_rows_stop_at_their_own_stop_token_and_leave_the_batch(judge):
    model, tok, device = judge
    nl = newline_token_ids(tok)
    assert tok.convert_tokens_to_ids("Ċ") in nl  # byte-level BPE's "\n"
    assert all("\n" in tok.decode([t]) for t in nl)
    ids = prompts(tok)
    full = HFEngine(model, tok, device, EngineConfig(mode="full", max_new_tokens=16, max_batch=16))
    free = [g.token_ids for g in full.generate(list(range(len(ids))), ids)]
    # A random model never writes a newline; make a token it does write the stop token instead, choosing one
    # that rows reach at different steps, so rows leave the batch at different times.
    first = {}
    for row in free:
        for t in set(row):
            first.setdefault(t, set()).add(row.index(t))
    stop = max(first, key=lambda t: len(first[t]))
    assert len(first[stop]) > 1
    eng = HFEngine(model, tok, device, EngineConfig(mode="fast", max_new_tokens=16, max_batch=16))
    eng.stop_ids = torch.tensor([stop])
    gens = eng.generate(list(range(len(ids))), ids)
    for g, row in zip(gens, free):
        if stop in row:
            assert g.stopped and g.token_ids == row[: row.index(stop) + 1]
        else:
            assert not g.stopped and g.token_ids == row
    assert len({len(g.token_ids) for g in gens}) > 1


def test_sampling_does_not_depend_on_batch_composition(judge):
    model, tok, device = judge
    ids = prompts(tok)
    runs = [HFEngine(model, tok, device, EngineConfig(mode="full", max_new_tokens=8, temperature=0.7, max_batch=b))
            .generate(list(range(100, 100 + len(ids))), ids) for b in (1, 5, 13)]
    assert [g.token_ids for g in runs[0]] == [g.token_ids for g in runs[1]] == [g.token_ids for g in runs[2]]
    greedy = HFEngine(model, tok, device, EngineConfig(mode="full", max_new_tokens=8)).generate(
        list(range(len(ids))), ids)
    assert [g.token_ids for g in runs[0]] != [g.token_ids for g in greedy]
    u = uniform_noise(0, torch.tensor([1, 2]), 3, 1000)
    assert 0 < u.min() and u.max() < 1 and abs(u.mean().item() - 0.5) < 0.05


def test_batches_respect_the_token_budget_and_sort_by_length():
    lengths = [5, 50, 20, 49, 3, 21]
    batches = plan_batches(lengths, max_new=10, batch_tokens=130, max_batch=3, max_padding=1.0)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for b in batches:
        assert len(b) <= 3 and len(b) * (max(lengths[i] for i in b) + 10) <= 130
    assert batches[0][0] == 1  # longest first: a batch too big for memory fails at once
    # padding is bounded: a 20-token prompt does not ride along in a batch 50 tokens wide
    batches = plan_batches(lengths, max_new=10, batch_tokens=10_000, max_batch=8, max_padding=0.15)
    assert batches == [[1, 3], [5, 2], [0], [4]]
    # ... but those groups decode together, as far as the row limit and the budget for the widest allow
    assert decode_batches(batches, lengths, 10, 10_000, 3) == [[[1, 3]], [[5, 2], [0]], [[4]]]
    assert decode_batches(batches, lengths, 10, 10_000, 8) == [[[1, 3], [5, 2], [0], [4]]]
    assert decode_batches(batches, lengths, 10, 240, 8) == [[[1, 3], [5, 2]], [[0], [4]]]  # 4 × (50 + 10) = 240


@pytest.mark.parametrize("attention", ["rows", "mask"])
@pytest.mark.parametrize("mode", ["fast", "full"])
def test_groups_of_different_widths_decode_together_exactly(judge, eager_judge, mode, attention):
    """Rows prefilled in separate groups and decoded as one batch (each row's tokens in its own slots, the rest
    masked zeros) generate what each prompt generates alone, whether attention reads spans of rows each over their
    own slots or the whole batch under one mask."""
    model, tok, device = judge if attention == "rows" else eager_judge
    ids = prompts(tok)
    eng = HFEngine(model, tok, device, EngineConfig(mode=mode, max_new_tokens=10, max_batch=13, max_padding=0.0))
    assert eng.row_attention == (attention == "rows")
    lengths = [len(x) for x in ids]
    groups = plan_batches(lengths, 10, eng.cfg.batch_tokens, 13, 0.0)
    assert len(groups) > 3 and len(decode_batches(groups, lengths, 10, eng.cfg.batch_tokens, 13)) == 1
    gens = eng.generate(list(range(len(ids))), ids)
    for g, p in zip(gens, ids):
        assert g.token_ids == reference_generate(model, p, eng.stop_ids.tolist(), 10)


def test_top_logprobs_are_recorded_in_fast_mode(judge):
    model, tok, device = judge
    eng = HFEngine(model, tok, device, EngineConfig(mode="fast", max_new_tokens=6, logprobs_topk=3))
    g = eng.generate([0], prompts(tok, 1))[0]
    assert g.top_ids.shape == (6, 3) and g.top_ids[0, 0] == g.token_ids[0]  # greedy picks the top token
    steps = len(g.token_ids)
    assert np.all(np.diff(g.top_logprobs[:steps], axis=1) <= 0) and np.isnan(g.top_logprobs[steps:]).all()


def test_over_long_prompts_are_truncated_from_the_answers_or_rejected(judge):
    model, tok, device = judge
    long_answer = "first answer " * 400
    ids, prompt = fit_prompt(tok, "What?", [long_answer, "short"], None, Mode.PAIR, limit=300)
    assert len(ids) <= 300 and prompt.user.endswith("### Response:")
    text = tok.decode(ids)
    assert "[Question]\nWhat?" in text and "short\n\n[The End of Assistant 2's Answer]" in text
    assert text.endswith("### Response:")
    assert fit_prompt(tok, "Why? " * 500, ["a", "b"], None, Mode.PAIR, limit=300) is None  # question never cut
    inputs = {"unit": np.arange(2), "record": np.array([0, 0]), "order": np.array([0, 1]),
              "with_reference": np.array([False, False]), "record_offset": 0, "question": ["What?"],
              "answers": [[long_answer, "short"]], "reference": [""], "n_answers": np.array([2])}
    prep = prepare_chunk(inputs, tok, Mode.PAIR, 300, "truncate")
    assert prep.truncated.all() and not prep.rejected.any() and all(len(x) <= 300 for x in prep.ids)
    prep = prepare_chunk(inputs, tok, Mode.PAIR, 300, "reject")
    assert prep.rejected.all() and prep.ids == [[], []]


def test_a_10_mb_answer_is_cut_by_tokens_and_both_orders_fit(judge):
    """Issue 15: a 10 MB answer took 302 s; only as much of it as can fit is tokenized now (no timing asserted)."""
    _, tok, _ = judge
    huge = ("The answer goes on and on, word after word. " * 230_000)[:10_000_000]
    inputs = {"unit": np.arange(4), "record": np.array([0, 0, 1, 1]), "order": np.array([0, 1, 0, 1]),
              "with_reference": np.array([True, False, False, False]), "record_offset": 0,
              "question": ["What?", "Why?"], "answers": [[huge, "short"], ["a", ""]],
              "reference": ["the reference", ""], "n_answers": np.array([2, 2])}
    prep = prepare_chunk(inputs, tok, Mode.PAIR, 1000, "truncate")
    assert prep.truncated.tolist() == [True, True, False, False] and not prep.rejected.any()
    assert all(len(x) <= 1000 for x in prep.ids) and len(prep.ids[0]) > 900  # cut to fit, not emptied
    text = tok.decode(prep.ids[1])
    assert "[The Start of Assistant 1's Answer]\nshort\n\n" in text and "The answer goes on and on" in text
    assert "[Reference Answer]\nthe reference\n\n" in tok.decode(prep.ids[0])  # short fields are kept whole


def test_models_that_transform_their_logits_go_through_their_own_head(judge):
    model, tok, device = judge
    ids = prompts(tok, 5)
    plain = HFEngine(model, tok, device, EngineConfig(mode="full", max_new_tokens=6))
    own_head = HFEngine(model, tok, device, EngineConfig(mode="full", max_new_tokens=6))
    own_head.plain_head = False  # the path soft-capped models take: logits from model(..., logits_to_keep=ends)
    a, b = plain.generate(list(range(5)), ids), own_head.generate(list(range(5)), ids)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert plain.plain_head  # Llama has no logit transform


@pytest.mark.parametrize("settings", [dict(mode="fast", logprobs_topk=3), dict(mode="full", max_new_tokens=12),
                                      dict(mode="full", max_new_tokens=12, temperature=0.7, top_k=5)])
def test_forked_compute_processes_give_the_same_generations(judge, settings):
    """Batches judged side by side in forked processes (``cpu_processes``) give the tokens and texts of one process
    (log-probabilities to float rounding: the batches are cut smaller), and a process killed between calls is
    replaced."""
    model, tok, device = judge
    ids = prompts(tok, 17)
    units = list(range(len(ids)))
    alone = HFEngine(model, tok, device, EngineConfig(cpu_processes=1, **settings)).generate(units, ids)
    eng = HFEngine(model, tok, device, EngineConfig(cpu_processes=3, **settings))
    for _ in range(2):
        out = eng.generate(units, ids)
        assert eng.pool.processes == 3
        for a, b in zip(alone, out):
            assert (a.unit, a.token_ids, a.text, a.stopped) == (b.unit, b.token_ids, b.text, b.stopped)
            if a.top_ids is not None:
                assert np.array_equal(a.top_ids, b.top_ids)
                assert np.allclose(a.top_logprobs, b.top_logprobs, atol=1e-4, equal_nan=True)
        os.kill(eng.pool.pids[0], signal.SIGKILL)
        os.waitpid(eng.pool.pids[0], 0)


def test_an_expected_call_is_queued_during_the_one_before_and_gives_the_same_generations(judge):
    """``expect`` queues the next call's batches while the current call's last ones end: that call then takes
    them (nothing computed twice) and gets what it would alone; a call asked otherwise is judged for itself, and a
    resample's call in between (other settings) neither takes the queue nor changes its settings."""
    model, tok, device = judge
    ids = prompts(tok, 17)
    first, second = (list(range(9)), ids[:9]), (list(range(9, 17)), ids[9:])
    settings = dict(mode="full", max_new_tokens=12)
    alone = HFEngine(model, tok, device, EngineConfig(cpu_processes=1, **settings))
    want = [g.token_ids for g in alone.generate(*first) + alone.generate(*second)]
    eng = HFEngine(model, tok, device, EngineConfig(cpu_processes=2, **settings))
    eng.expect(lambda: second)
    got = eng.generate(*first)
    assert eng._queued[1] == second[0]  # the second call's batches, queued already
    saved = eng.cfg
    eng.cfg = replace(saved, temperature=0.7)  # a resample between the two calls
    eng.generate([100 + u for u in first[0][:3]], first[1][:3])
    eng.cfg = saved
    submitted = len(eng.pool.jobs)
    got += eng.generate(*second)
    assert [g.token_ids for g in got] == want
    assert len(eng.pool.jobs) == submitted and eng._queued is None  # taken from the queue, not submitted again
    eng.expect(lambda: first)
    eng.generate(*second)  # queues the first call's batches...
    eng.expect(lambda: second)  # ...which the next call does not ask for: dropped when its own follower is queued
    assert [g.token_ids for g in eng.generate(*second)] == want[9:]
    assert [g.token_ids for g in eng.generate(*second)] == want[9:]
    assert eng._queued is None and not eng.pool.results


def test_a_tiny_model_judges_in_processes_and_a_bigger_one_in_threads(monkeypatch):
    """By default a CPU engine forks one process per thread only for a tiny model; a bigger one (weight- and
    cache-bound decode steps) computes with threads in one process; a GPU never forks; a setting always wins."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    cpu = torch.device("cpu")
    assert cpu_processes(0, cpu, 1_900_000) == 2
    assert cpu_processes(0, cpu, 52_500_000) == 1
    assert cpu_processes(0, torch.device("cuda"), 1_900_000) == 1
    assert cpu_processes(3, cpu, 52_500_000) == 3


def test_prefills_stay_within_their_token_cap():
    lengths = [300, 290, 280, 100, 90, 80, 70, 5000]
    batches = plan_batches(lengths, max_new=10, batch_tokens=100_000, max_batch=64, max_padding=1.0,
                           prefill_tokens=600)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:  # a prompt longer than the cap is prefilled alone
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 600
