"""Training samples: prompt/target construction, the label mask, augmentation, batching, the tiny data set."""

from __future__ import annotations

import copy
import json
import random

import numpy as np
import pytest

from judgelm.data.records import RecordError
from judgelm.data.verdicts import parse_scores
from judgelm.profiles.prompts import build_prompt
from judgelm.train import tiny_data
from judgelm.train.data import (
    IGNORE,
    BatchPlan,
    SampleBuilder,
    collate,
    load_train_records,
    record_from_json,
    swap_judgement,
    swapped,
)
from judgelm.train.tokenizer import build_tiny_tokenizer
from tests.test_train_fixtures import micro_record, write_micro_data


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = write_micro_data(tmp_path_factory.mktemp("data") / "train.jsonl", n=40)
    return load_train_records([path], skip_invalid=False).records


@pytest.fixture(scope="module")
def tokenizer(records, tmp_path_factory):
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tok")
    build_tiny_tokenizer(records, vocab_size=1000, model_max_length=512, out_dir=out)
    return AutoTokenizer.from_pretrained(out)  # reloaded: what a training run and the judge both use


def test_tokenizer_behaves_like_llama(tokenizer):
    assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert tokenizer.pad_token_id is not None and tokenizer.padding_side == "left"
    ids = tokenizer("8 3\nAssistant 1").input_ids
    assert ids[0] == tokenizer.bos_token_id  # BOS prepended by the post-processor
    assert tokenizer.decode(ids, skip_special_tokens=True) == "8 3\nAssistant 1"
    assert "\n" in [tokenizer.decode([i]) for i in ids]  # a newline is its own token: judges stop on it
    text = "héllo 中文 ✓\n\n 10 8.5"  # unseen characters still round-trip (byte-level)
    assert tokenizer.decode(tokenizer(text).input_ids, skip_special_tokens=True) == text


def test_tokenizer_build_is_deterministic(records, tmp_path):
    a = build_tiny_tokenizer(records, vocab_size=1000, model_max_length=512, out_dir=tmp_path / "a")
    b = build_tiny_tokenizer(records, vocab_size=1000, model_max_length=512, out_dir=tmp_path / "b")
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
    assert a.get_vocab() == b.get_vocab()


def test_label_mask_covers_exactly_the_target(records, tokenizer):
    builder = SampleBuilder(records, tokenizer, max_length=512, seed=3, ref_prob=0.5, swap_prob=0.5)
    seen_ref = set()
    for index in range(len(records)):
        view = builder.view(0, index)
        sample = builder.build(0, index)
        prompt_ids = tokenizer(view.prompt).input_ids
        n = len(prompt_ids)
        # The prompt is exactly the inference prompt, BOS included, and carries no label.
        assert sample.input_ids[:n] == prompt_ids
        assert all(label == IGNORE for label in sample.labels[:n])
        # Every position after it is labelled with its own token, ending in EOS.
        assert sample.labels[n:] == sample.input_ids[n:]
        assert sample.labels[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(sample.labels[n:-1]) == view.target
        seen_ref.add(view.with_reference)
        r = records[index]
        answers = r.answers[::-1] if view.swapped else r.answers
        assert view.prompt == build_prompt(r.question, answers, r.reference if view.with_reference else None)
    assert seen_ref == {True, False}


def test_swap_flips_scores_and_names_and_leaves_the_source_untouched(tmp_path):
    raw = micro_record(0, random.Random(1))
    raw["text"] = "8 3\nAssistant 1 is precise; Assistant 2 rambles. Assistant 1 and 2 both answer. Assistant 10."
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(raw) + "\n")
    before = copy.deepcopy(raw)
    rec = load_train_records([path], skip_invalid=False).records[0]
    frozen = copy.deepcopy(rec)

    s = swapped(rec)
    assert s.text == "3 8\nAssistant 2 is precise; Assistant 1 rambles. Assistant 1 and 2 both answer. Assistant 10."
    assert parse_scores(s.text) == parse_scores(rec.text)[::-1]
    assert parse_scores(s.text_w_reference) == parse_scores(rec.text_w_reference)[::-1]
    assert s.answers == rec.answers[::-1] and s.answer_ids == rec.answer_ids[::-1]
    assert s.model_ids == rec.model_ids[::-1] and s.metadata == rec.metadata[::-1]
    assert s.reference == rec.reference  # the reference belongs to the question, not to a slot
    assert swapped(s) == rec
    assert rec == frozen and raw == before  # nothing was changed in place


def test_draws_depend_only_on_seed_epoch_and_index(records, tokenizer):
    a = SampleBuilder(records, tokenizer, 512, seed=11, ref_prob=0.5, swap_prob=0.5)
    b = SampleBuilder(records, tokenizer, 512, seed=11, ref_prob=0.5, swap_prob=0.5)
    order = list(range(len(records)))
    random.Random(0).shuffle(order)  # asking in another order (as a resumed run would) changes nothing
    assert [a.view(2, i) for i in range(len(records))] == [b.view(2, i) for i in sorted(order)]
    views = [a.view(e, i) for e in range(25) for i in range(len(records))]
    ref_rate = np.mean([v.with_reference for v in views])
    swap_rate = np.mean([v.swapped for v in views])
    assert 0.45 < ref_rate < 0.55 and 0.45 < swap_rate < 0.55
    assert [a.view(0, i) for i in range(40)] != [a.view(1, i) for i in range(40)]  # epochs draw anew
    never = SampleBuilder(records, tokenizer, 512, seed=11, ref_prob=0.0, swap_prob=1.0)
    assert all(not never.view(0, i).with_reference and never.view(0, i).swapped for i in range(40))


def test_too_long_samples_are_dropped_not_truncated(records, tokenizer):
    full = SampleBuilder(records, tokenizer, 512, seed=0, ref_prob=0.0, swap_prob=0.0)
    lengths = [len(full.build(0, i).input_ids) for i in range(len(records))]
    limit = sorted(lengths)[len(lengths) // 2]
    short = SampleBuilder(records, tokenizer, limit, seed=0, ref_prob=0.0, swap_prob=0.0)
    built = [short.build(0, i) for i in range(len(records))]
    assert [s is None for s in built] == [n > limit for n in lengths]
    # A micro-batch whose samples were all dropped still runs: one row that carries no label.
    batch = collate([None, None], pad_id=tokenizer.pad_token_id, bos_id=tokenizer.bos_token_id)
    assert batch["input_ids"].tolist() == [[tokenizer.bos_token_id]] and (batch["labels"] == IGNORE).all()
    kept = [s for s in built if s is not None][:3]
    batch = collate(kept + [None], tokenizer.pad_token_id, tokenizer.bos_token_id)
    assert batch["input_ids"].shape == (3, max(len(s.input_ids) for s in kept))
    assert set(batch) == {"input_ids", "labels"}  # right-padded for a causal model: no mask needed
    assert [(row != tokenizer.pad_token_id).sum().item() for row in batch["input_ids"]] == \
        [len(s.input_ids) for s in kept]


def test_batch_plan_splits_the_same_global_batch_for_any_world_size():
    size = {i: (i * 37) % 11 for i in range(50)}
    for step in (0, 3, 6, 7):  # 6 steps per epoch: 7 is in the second epoch
        one = BatchPlan(50, 8, 2, 1, seed=5).micro_batches(step, 0, size.get)
        per_rank = [BatchPlan(50, 8, 2, 2, seed=5).micro_batches(step, r, size.get) for r in (0, 1)]
        assert all(len(mb) == 2 for mb in one) and len(one) == 4
        assert sorted(sum(one, [])) == sorted(sum(sum(per_rank, []), []))
        assert sorted(sum(one, [])) == sorted(BatchPlan(50, 8, 2, 1, seed=5).step_indices(step).tolist())
    plan = BatchPlan(50, 8, 2, 1, seed=5)
    epoch0 = np.concatenate([plan.step_indices(s) for s in range(6)])
    assert len(set(epoch0.tolist())) == 48  # an epoch never repeats a record; 2 are left for the next shuffle
    assert plan.step_indices(6).tolist() != plan.step_indices(0).tolist()


def test_invalid_records_name_file_line_and_field(tmp_path):
    rng = random.Random(2)
    good = micro_record(0, rng)
    error = dict(micro_record(1, rng), text="error")
    bad_scores = dict(micro_record(2, rng), text_w_reference="Assistant 1 wins\n...")
    no_ref_judgement = micro_record(3, rng)
    del no_ref_judgement["text_w_reference"]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (good, error, bad_scores, no_ref_judgement)) + "\n")
    with pytest.raises(RecordError) as e:
        load_train_records([path], skip_invalid=False)
    assert e.value.source.line == 2 and e.value.field == "text"
    loaded = load_train_records([path], skip_invalid=True)
    assert [r.question_id for r in loaded.records] == [0]
    assert [(r.source.line, r.field) for r in loaded.rejects] == [(2, "text"), (3, "text_w_reference"),
                                                                   (4, "text_w_reference")]
    without = micro_record(4, rng, with_reference=False)
    assert record_from_json(without, None).reference is None  # no reference: trains without one


def test_swap_judgement_normalises_a_comma_score_line():
    assert swap_judgement("8,7\nAssistant 2 wins") == "7 8\nAssistant 1 wins"
    assert swap_judgement("10 2") == "2 10"


def test_tiny_training_set_regenerates_byte_identically():
    records, skipped = tiny_data.convert()
    assert tiny_data.render(records) == tiny_data.DEFAULT_OUT.read_bytes()
    assert (len(records), skipped) == (1689, 1)
    assert [r["question_id"] for r in records] == list(range(len(records)))
    subsets = {r["subset"] for r in records}
    assert not any("Natural" in s or "Adversarial" in s or "MT-Bench" in s for s in subsets)
    pairs, cut = records[:580], records[580:]
    assert not any(r["subset"].endswith("/truncated") for r in pairs)
    assert len(cut) == 1109 and all(r["subset"].endswith("/truncated") for r in cut)
    for r in pairs[:50]:  # the better answer wins in both judgements, and the reference is that answer
        s, sr = parse_scores(r["text"]), parse_scores(r["text_w_reference"])
        better = 1 if s[0] > s[1] else 2
        assert (sr[0] > sr[1]) == (better == 1)
        assert r["reference"]["text"] == r[f"answer{better}_body"]
    wins = set()
    for r in cut:  # the complete answer wins by a clear gap; the other is a short word-boundary prefix of it
        s, sr = parse_scores(r["text"]), parse_scores(r["text_w_reference"])
        full = 1 if s[0] > s[1] else 2
        wins.add(full)
        assert (sr[0] > sr[1]) == (full == 1) and abs(s[0] - s[1]) >= 4 and abs(sr[0] - sr[1]) >= 5
        complete, short = r[f"answer{full}_body"], r[f"answer{3 - full}_body"]
        assert r["reference"]["text"] == complete and complete.startswith(short) and short.strip()
        assert len(short.split()) <= max(1, round(0.2 * len(complete.split())))
        assert r[f"answer{3 - full}_model_id"].endswith("-truncated")
        for text in (r["text"], r["text_w_reference"]):  # the explanation says which assistant is cut off
            sentences = {k: [x for x in text.split("\n", 1)[1].split(". ") if f"Assistant {k}" in x] for k in (1, 2)}
            assert len(sentences[1]) == len(sentences[2]) == 1
            assert any(w in sentences[3 - full][0] for w in ("stops", "cut off", "breaks off"))
            assert not any(w in sentences[full][0] for w in ("stops", "cut off", "breaks off"))
    assert wins == {1, 2}
    loaded = load_train_records([tiny_data.DEFAULT_OUT], skip_invalid=False)
    assert len(loaded.records) == 1689 and not loaded.rejects
