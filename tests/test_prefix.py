"""Prefix-grouped prefill: shared prompt prefixes are found, computed once, and change no generated token."""

import pytest

from judgelm.inference.config import EngineConfig, ModelConfig
from judgelm.inference.hf import HFEngine, prefill_plan
from judgelm.inference.models import encode_with_bos, load_judge
from judgelm.inference.prefix import attention_positions_per_token, prefill_cost, prefix_groups, worth_sharing
from judgelm.profiles.prompts import build_prompt
from tests.test_engine import reference_generate


def test_groups_are_cut_where_they_save_the_most_positions():
    base, q1, q2 = [1] * 40, [2] * 30, [3] * 30
    ids = [base + q1 + [7, 8], base + q2 + [9], base + q1 + [5] * 4, [4] * 50, base + q1 + [6]]
    groups = prefix_groups(ids, min_prefix=32)
    assert sorted(i for _, rows in groups for i in rows) == list(range(5))
    # the three prompts of q1 share 70 tokens (saving 140) rather than all four of `base` sharing 40 (saving 120)
    assert sorted((p, sorted(rows)) for p, rows in groups) == [(0, [1]), (0, [3]), (70, [0, 2, 4])]
    # a prefix leaves the last token of its shortest prompt to the suffix pass
    assert prefix_groups([base, base + [5]], min_prefix=32) == [(39, [0, 1])]
    assert prefix_groups([base, [1] * 20 + [2] * 20], min_prefix=32) == [(0, [0]), (0, [1])]  # 20 < 32


def test_a_prefix_is_shared_only_where_it_saves_work():
    tiny, big = attention_positions_per_token(128, 352), attention_positions_per_token(4096, 11008)  # 7B-shaped
    assert worth_sharing(835, 400, tiny) and not worth_sharing(50, 1000, tiny)  # baseline answer vs question
    assert worth_sharing(50, 1000, big)  # on a 7B judge the projections dominate: share even the question


def test_a_shared_prefix_is_costed_once():
    t = attention_positions_per_token(128, 352)
    whole = prefill_cost([300], 0, t)
    assert prefill_cost([300, 300], 0, t) == 2 * whole
    assert prefill_cost([300, 300], 290, t) == prefill_cost([290], 0, t) + 2 * (whole - prefill_cost([290], 0, t))
    assert prefill_cost([300, 300], 290, t) < 2 * whole


def test_with_several_processes_batches_sharing_a_prefix_are_queued_by_cost(judge):
    """The processes claim jobs in queue order; long prompts that share most of themselves cost less than
    shorter ones that share nothing, so those go first (claimed last, they would end alone)."""
    model, tok, device = judge
    cheap = [[1] * 290 + [10 + r] * 10 for r in range(8)]
    costly = [[100 + r] + [5 + r] * 249 for r in range(8)]
    ids, units = cheap + costly, list(range(16))
    engine = HFEngine(model, tok, device, EngineConfig(mode="fast", max_new_tokens=4, cpu_processes=2))
    batches, jobs = engine._plan(units, ids, 2)
    assert [all(i >= 8 for g in b for i in g) for b in batches] == [True, True, False, False]
    assert [u for job in jobs for u in job[1]] == [units[i] for b in batches for g in b for i in g]
    assert all(p for job in jobs[2:] for p in job[3])  # the cheap ones do share their prefix
    plain = HFEngine(model, tok, device, EngineConfig(mode="fast", max_new_tokens=4, cpu_processes=2,
                                                      prefix_sharing=False))
    assert [all(i < 8 for g in b for i in g) for b in plain._plan(units, ids, 2)[0]] == [True, True, False, False]


def model_eval_prompts(tok):
    """Three questions, each answer of four 'models' judged against one baseline answer, in both orders."""
    texts = []
    for q in range(3):
        question, baseline = f"Question {q}: " + "explain this " * (3 + q), "The baseline answer. " * (4 + 2 * q)
        for m in range(4):
            answer = f"model {m} says " + "yes " * (1 + 5 * m)
            texts += [build_prompt(question, [baseline, answer]), build_prompt(question, [answer, baseline])]
    return encode_with_bos(tok, texts)


@pytest.fixture(scope="module")
def judge(random_judge):
    return load_judge(ModelConfig(path=str(random_judge)))[:3]


@pytest.mark.parametrize("mode,max_batch", [("full", 64), ("fast", 5)])
def test_shared_prefixes_give_the_tokens_of_one_prompt_at_a_time(judge, mode, max_batch):
    model, tok, device = judge
    ids = model_eval_prompts(tok)
    cfg = EngineConfig(mode=mode, max_new_tokens=10, max_batch=max_batch, cpu_processes=1)
    engine = HFEngine(model, tok, device, cfg)
    groups, prefix_of = prefill_plan(ids, 10, engine.cfg.batch_tokens, max_batch, cfg.max_padding, engine.per_token)
    shared = {g[0]: g for g in groups if g[0] in prefix_of}
    # the original order shares the baseline answer (four rows each), and rows are really grouped by it
    assert max(prefix_of.values()) > 60 and max(len(g) for g in shared.values()) >= 2
    for first, g in shared.items():
        assert len({tuple(ids[i][: prefix_of[first]]) for i in g}) == 1
    gens = engine.generate(list(range(len(ids))), ids)
    plain = HFEngine(model, tok, device, EngineConfig(mode=mode, max_new_tokens=10, max_batch=max_batch,
                                                      prefix_sharing=False)).generate(list(range(len(ids))), ids)
    assert [g.token_ids for g in gens] == [g.token_ids for g in plain]
    for g, p in zip(gens, ids):
        assert g.token_ids == reference_generate(model, p, engine.stop_ids.tolist(), 10)


def pandalm_prompts(tok):
    """Two questions, each with every ordered pair of three answers: the question is shared by all six prompts,
    each answer opens two of them (PandaLM's prefixes nest)."""
    texts = []
    for q in range(2):
        question = f"Question {q}: " + "explain this in detail " * 30
        answers = [f"answer {a}: " + "because of the reasons given " * (4 + 2 * a) for a in range(3)]
        texts += [build_prompt(question, [answers[a], answers[b]]) for a in range(3) for b in range(3) if a != b]
    return encode_with_bos(tok, texts)


def test_a_prefix_continues_from_what_an_earlier_row_holds(judge, monkeypatch):
    model, tok, device = judge
    ids = pandalm_prompts(tok)
    engine = HFEngine(model, tok, device, EngineConfig(mode="fast", max_new_tokens=6, cpu_processes=1))
    [(_, units, groups, prefixes)] = engine._plan(list(range(len(ids))), ids, 1)[1]
    computed, one_level = set(), 0  # each distinct prefix computed whole, then every row's suffix
    for g, p in zip(groups, prefixes):
        one_level += (p if p and tuple(g[0][:p]) not in computed else 0) + sum(len(x) - p for x in g)
        computed.add(tuple(g[0][:p]))
    assert len(computed - {()}) >= 2  # prefixes of answers opening a pair, each with its question
    prefilled = []
    prefill = engine._prefill_group
    monkeypatch.setattr(engine, "_prefill_group", lambda prompts, cache: prefilled.append(
        sum(map(len, prompts))) or prefill(prompts, cache))
    gens = engine.generate(units, [ids[u] for u in units])
    assert sum(prefilled) < one_level  # the question is computed once, not once per prefix that starts with it
    plain = HFEngine(model, tok, device, EngineConfig(mode="fast", max_new_tokens=6, cpu_processes=1,
                                                      prefix_sharing=False)).generate(units, [ids[u] for u in units])
    assert [g.token_ids for g in gens] == [g.token_ids for g in plain]
    for g in gens:
        assert g.token_ids == reference_generate(model, ids[g.unit], engine.stop_ids.tolist(), 6)
