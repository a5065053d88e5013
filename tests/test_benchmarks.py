"""Benchmark adapters: every shipped set loads with its documented counts and label distribution (the SOURCE.md of
each data/benchmarks/ folder), the generic adapter, suites, JudgeLM val from a local directory, and bad input."""

import json
from collections import Counter

import pytest

from judgelm.config import ConfigError
from judgelm.data.benchmarks import BENCHMARKS, DATA_DIR, absolute_spec, load_dataset
from judgelm.data.benchmarks.files import load_files
from judgelm.data.benchmarks.generic import load_generic
from judgelm.data.benchmarks.judgebench import record_from_judgebench
from judgelm.data.benchmarks.llmbar import record_from_llmbar
from judgelm.data.benchmarks.prometheus import record_from_prometheus
from judgelm.data.benchmarks.rewardbench import EXAMPLE_COUNTS, SECTIONS, record_from_rewardbench
from judgelm.data.benchmarks.suites import load_suite, sources_by_mode
from judgelm.data.records import RecordError


def counts(records, key):
    return Counter(key(r) for r in records)


def test_pandalm_keeps_its_records_and_majority_labels():
    recs = BENCHMARKS["pandalm"]().records
    assert len(recs) == 999 and counts(recs, lambda r: r.label) == {1: 422, 0: 105, -1: 472}
    assert recs[0].question_id == 0 and {r.subset for r in recs} == {"pandalm"}


def test_llmbar_subsets_counts_and_labels():
    recs = BENCHMARKS["llmbar"]().records
    assert len(recs) == 419
    assert counts(recs, lambda r: (r.subset, r.label)) == {
        ("llmbar/Natural", 1): 42, ("llmbar/Natural", -1): 58,
        ("llmbar/Adversarial/Neighbor", 1): 75, ("llmbar/Adversarial/Neighbor", -1): 59,
        ("llmbar/Adversarial/GPTInst", 1): 45, ("llmbar/Adversarial/GPTInst", -1): 47,
        ("llmbar/Adversarial/GPTOut", 1): 22, ("llmbar/Adversarial/GPTOut", -1): 25,
        ("llmbar/Adversarial/Manual", 1): 22, ("llmbar/Adversarial/Manual", -1): 24}
    assert counts(recs, lambda r: r.category) == {"Natural": 100, "Adversarial": 319}
    raw = json.loads((DATA_DIR / "llmbar/LLMBar/Adversarial/Neighbor/dataset.json").read_text())[0]
    first = next(r for r in recs if r.question_id == "Adversarial/Neighbor/0")
    assert first.answers == (raw["output_1"], raw["output_2"]) and raw["label"] == 2 and first.label == -1


def test_mtbench_human_pairs():
    recs = BENCHMARKS["mtbench_human"]().records
    assert len(recs) == 200 and counts(recs, lambda r: r.label) == {1: 101, -1: 99}
    assert {r.subset for r in recs} == {"mtbench_human"}


def test_judgebench_sets_labels_and_categories():
    recs = BENCHMARKS["judgebench"]().records
    assert len(recs) == 620 and len({r.question_id for r in recs}) == 620
    assert counts(recs, lambda r: (r.subset, r.label)) == {
        ("judgebench/gpt-4o", 1): 193, ("judgebench/gpt-4o", -1): 157,
        ("judgebench/claude-3.5-sonnet", 1): 143, ("judgebench/claude-3.5-sonnet", -1): 127}
    # mmlu-pro 154 + 154, livebench-reasoning 98 + 51, livebench-math 56 + 34, livecodebench 42 + 31
    assert counts(recs, lambda r: r.category) == {"knowledge": 308, "reasoning": 149, "math": 90, "coding": 73}


def test_rewardbench_sections_subsets_and_chosen_placement():
    recs = BENCHMARKS["rewardbench"]().records
    assert len(recs) == 2985
    assert counts(recs, lambda r: r.category) == {"Chat": 358, "Chat Hard": 456, "Safety": 740, "Reasoning": 1431}
    sizes = counts(recs, lambda r: r.subset.split("/", 1)[1])
    assert sizes == {**EXAMPLE_COUNTS, "math-prm": 447}  # RewardBench's counts, except its upweighting of math-prm
    assert set(sizes) == {s for subsets in SECTIONS.values() for s in subsets}
    assert counts(recs, lambda r: r.label) == {1: 1500, -1: 1485}  # chosen alternates between the slots
    raw = {f"{row['subset']}/{row['id']}": row for name in ("Chat", "Chat_Hard", "Safety", "Reasoning")
           for row in map(json.loads, (DATA_DIR / "rewardbench" / f"{name}.jsonl").read_text().splitlines())}
    for r in recs:
        chosen = r.answers[0] if r.label == 1 else r.answers[1]
        assert chosen == raw[r.question_id]["chosen"]
    assert {"hep-python/3692", "donotanswer/3692"} <= {r.question_id for r in recs}  # the copy repeats an id


def test_prometheus_single_answer_sets():
    recs = BENCHMARKS["prometheus"]().records
    assert len(recs) == 640 and counts(recs, lambda r: r.subset) == {"prometheus/mt_bench": 320,
                                                                     "prometheus/vicuna": 320}
    assert counts(recs, lambda r: r.label) == {1: 530, 0: 110}  # 0: GPT-4 gave 5 in all three samples
    assert all(1 <= r.gt_scores[0] <= 5 and r.answers[0] == r.reference for r in recs)
    assert sum(r.gt_scores[0] for r in recs) / 640 == pytest.approx(3.8171875)
    assert not any("###" in r.question or "###" in r.answers[1] for r in recs)
    assert BENCHMARKS["prometheus"].mode == "single"
    raw = json.loads((DATA_DIR / "prometheus/mt_bench_eval.json").read_text())[0]
    assert (recs[0].gt_scores == (sum(raw["gpt4_score"]) / 3,)
            and recs[0].answers[1].startswith("Sure, here's a limerick"))


def test_suite_ids_are_unique_and_limits_apply_per_subset():
    loaded = load_dataset("pandalm@3+llmbar@2+rewardbench@1")
    assert len(loaded.records) == 3 + 5 * 2 + 23
    ids = [r.question_id for r in loaded.records]
    assert len(set(ids)) == len(ids) and ids[0] == "pandalm/0" and "llmbar/Natural/0" in ids
    assert len(load_dataset("pandalm+llmbar").records) == 999 + 419
    with pytest.raises(ValueError, match="twice"):
        load_dataset("pandalm+pandalm@3")


def test_named_suites_cover_every_shipped_benchmark():
    shipped = {name for name, b in BENCHMARKS.items() if not b.needs_arg}
    assert set(load_suite("default").benchmarks) == shipped
    quick = load_suite("quick")
    assert quick.limit > 0
    sources = sources_by_mode(quick.benchmarks, quick.limit)
    assert set(sources) == {"pair", "single"} and sources["single"] == f"prometheus@{quick.limit}"
    with pytest.raises(ConfigError, match="choices"):
        load_suite("nope")


def write_judgelm_val(root, shuffle_gt=False):
    """Four pairs in JudgeLM-100K's val layout: one unparseable GPT-4 judgement, references for all."""
    root.mkdir()
    q = [{"question_id": i, "question_body": f"Q{i}", "answer1_body": f"a{i}", "answer2_body": f"b{i}",
          "answer1_model_id": "m1", "answer2_model_id": "m2", "score": [{"logprobs": -1}, {"logprobs": -2}]}
         for i in range(4)]
    gt = ["8 3\nbecause", "2 9\n...", "error", "5 5\n"]
    gt_ref = ["3 8\n", "2 9\n", "7 7\n", "6 1\n"]
    ids = [1, 0, 2, 3] if shuffle_gt else [0, 1, 2, 3]
    (root / "judgelm_val_5k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in q))
    (root / "judgelm_val_5k_gpt4.jsonl").write_text(
        "".join(json.dumps({"question_id": i, "text": t, "score": [-1, -1]}) + "\n" for i, t in zip(ids, gt)))
    (root / "judgelm_val_5k_gpt4_with_reference.jsonl").write_text(
        "".join(json.dumps({"question_id": i, "text": t}) + "\n" for i, t in enumerate(gt_ref)))
    (root / "judgelm_val_5k_references.jsonl").write_text(
        "".join(json.dumps({"question_id": i, "reference": {"text": f"ref {i}"}}) + "\n" for i in range(4)))
    return root


def test_judgelm_val_joins_its_files_by_position(tmp_path):
    root = write_judgelm_val(tmp_path / "val")
    recs = load_dataset(f"judgelm_val:{root}").records
    assert [r.gt_label() for r in recs] == [1, -1, None, 0]  # "error" does not parse: no ground truth
    assert [r.gt_label(with_reference=True) for r in recs] == [-1, -1, 0, 1]
    assert recs[0].reference == "ref 0" and recs[0].gt_scores == (8.0, 3.0) and recs[0].subset == "judgelm_val"
    with pytest.raises(ValueError, match="judgelm_val:PATH"):
        load_dataset("judgelm_val")
    with pytest.raises(FileNotFoundError, match="judgelm_val_5k.jsonl"):
        load_dataset(f"judgelm_val:{tmp_path}")


def test_judgelm_val_refuses_misaligned_files(tmp_path):
    root = write_judgelm_val(tmp_path / "val", shuffle_gt=True)
    with pytest.raises(RecordError) as e:
        load_dataset(f"judgelm_val:{root}")
    assert e.value.source.path.endswith("judgelm_val_5k_gpt4.jsonl") and e.value.source.line == 1
    assert e.value.field == "question_id"


def write_generic(tmp_path, config: str, rows: list[dict]):
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "mine.yaml").write_text(config)
    return tmp_path / "mine.yaml"


ROWS = [{"uid": "a", "instr": "Say hi", "inp": "", "x": "hi", "y": "hello there", "w": "A", "dom": "chat",
         "sa": 8, "sb": 3},
        {"uid": "b", "instr": "Add", "inp": "2+2", "x": "4", "y": "5", "w": "B", "dom": "math", "sa": 2, "sb": 9},
        {"uid": "c", "instr": "Add", "inp": "2+3", "x": "5", "y": "5", "w": "tie", "sa": 7, "sb": 7}]


def test_generic_adapter_maps_fields_and_labels(tmp_path):
    cfg = write_generic(tmp_path, "path: data.jsonl\nid: uid\nquestion: [instr, inp]\nanswer1: x\nanswer2: y\n"
                                  "label: w\nlabel_values: {A: 1, B: -1, tie: 0}\nsubset: dom\n", ROWS)
    recs = load_dataset(str(cfg)).records
    assert [r.question_id for r in recs] == ["a", "b", "c"]
    assert [r.label for r in recs] == [1, -1, 0]
    assert recs[0].question == "Say hi" and recs[1].question == "Add\n2+2"  # empty parts are skipped
    assert [r.subset for r in recs] == ["mine/chat", "mine/math", "mine"]
    by_scores = write_generic(tmp_path, "path: data.jsonl\nquestion: instr\nanswer1: x\nanswer2: y\nscores: [sa, sb]\n",
                              ROWS)
    recs = load_generic(by_scores).records
    assert [r.gt_label() for r in recs] == [1, -1, 0] and recs[0].gt_scores == (8.0, 3.0)
    assert [r.question_id for r in recs] == [1, 2, 3]  # line numbers when no id field is named
    fixed = write_generic(tmp_path, "path: data.jsonl\nquestion: instr\nanswer1: x\nanswer2: y\nfixed_label: 1\n", ROWS)
    assert {r.label for r in load_generic(fixed).records} == {1}


def test_generic_adapter_errors_name_file_line_and_field(tmp_path):
    bad_rows = ROWS[:1] + [{**ROWS[1], "w": "C"}]
    cfg = write_generic(tmp_path, "path: data.jsonl\nquestion: instr\nanswer1: x\nanswer2: y\nlabel: w\n"
                                  "label_values: {A: 1, B: -1}\n", bad_rows)
    with pytest.raises(RecordError) as e:
        load_generic(cfg)
    assert e.value.source.path.endswith("data.jsonl") and e.value.source.line == 2 and e.value.field == "w"
    assert "'C'" in str(e.value)
    skipped = load_generic(cfg, skip_invalid=True)
    assert len(skipped.records) == 1 and skipped.rejects[0].field == "w"
    missing = write_generic(tmp_path, "path: data.jsonl\nquestion: instr\nanswer1: x\nanswer2: nope\n", ROWS)
    with pytest.raises(RecordError, match="field 'nope': missing"):
        load_generic(missing)
    typo = write_generic(tmp_path, "path: data.jsonl\nquestion: instr\nanswer1: x\nanswer2: y\nlabels: w\n", ROWS)
    with pytest.raises(ConfigError, match="labels"):
        load_generic(typo)
    both = write_generic(tmp_path, "path: data.jsonl\nquestion: instr\nanswer1: x\nanswer2: y\nfixed_label: 1\n"
                                   "scores: [sa, sb]\n", ROWS)
    with pytest.raises(ConfigError, match="at most one"):
        load_generic(both)


@pytest.mark.parametrize("config, fragment", [
    ("path: data.jsonl\nquestion: [instr\nanswer1: x\n", "mine.yaml:3: YAML syntax error"),
    ("path: data.jsonl\nquestion: instr\nanswer1: x\nanswer2: y\nlabel: w\nlabel_values: {yes: 1, no: -1}\n",
     "key True is read by YAML as a bool, not as text; quote it"),
    ("path: data.jsonl\nquestion: instr\nanswer1: x\nanswer2: y\nlabel: w\nlabel_values: {A: 1, B: 2}\n",
     "label_values.B: 2 is not a label"),
    ("path: data.jsonl\nquestion: instr\nanswer1: x\nanswer2: y\nlabel: w\nlabel_values: {0:1,2:0}\n",
     "key 120 has no value; put a space after each colon"),  # YAML 1.1 reads 2:0 as 2 * 60 + 0
    ("path: data.jsonl\nquestion: instr\nanswer1: x\nanswer2: y\nextract: {x: 'no group'}\n", "names no group"),
    ("- path: data.jsonl\n", "holds keys"),
])
def test_mapping_file_mistakes_are_one_line(tmp_path, config, fragment):
    cfg = write_generic(tmp_path, config, ROWS)
    with pytest.raises(ConfigError) as e:
        load_dataset(f"generic:{cfg}")
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_generic_prefix_integer_and_compact_label_keys_and_extract(tmp_path):
    rows = [{"t": "Q: add 2+2\nA: 4", "u": "5", "w": 0}, {"t": "Q: name a prime\nA: ", "u": "7", "w": 2}]
    cfg = write_generic(tmp_path, "path: data.jsonl\nquestion: q\nanswer1: a\nanswer2: u\nlabel: w\n"
                                  "label_values: {0: 1, 1: -1, 2: 0}\n"
                                  "extract: {t: 'Q: (?P<q>.*)\\nA: (?P<a>.*)'}\n", rows)
    loaded = load_dataset(f"generic:{cfg}")
    assert [(r.question, r.answers, r.label) for r in loaded.records] == [("add 2+2", ("4", "5"), 1),
                                                                          ("name a prime", ("", "7"), 0)]
    assert loaded.empty_answers == 1 and loaded.ids_from_lines
    (tmp_path / "data.jsonl").write_text(json.dumps({"t": "no match", "u": "5", "w": 0}) + "\n")
    with pytest.raises(RecordError, match="field 't': does not match the extract pattern"):
        load_dataset(f"generic:{cfg}")


def test_generic_spec_paths_are_made_absolute_and_missing_mappings_named(tmp_path, monkeypatch):
    cfg = write_generic(tmp_path, "path: data.jsonl\nquestion: instr\nanswer1: x\nanswer2: y\n", ROWS)
    monkeypatch.chdir(tmp_path)
    assert absolute_spec("generic:mine.yaml") == f"generic:{cfg}" and absolute_spec("pandalm") == "pandalm"
    with pytest.raises(FileNotFoundError, match="generic mapping file not found: nope.yaml"):
        load_dataset("generic:nope.yaml")
    (tmp_path / "data.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="path is relative to the mapping file"):
        load_dataset("generic:mine.yaml")


PROMETHEUS_PROMPT = ("###Task Description:\n...\n###The instruction to evaluate:\nq\n\n###Response to evaluate:\nr\n\n"
                     "###Reference Answer (Score 5):\ng\n\n###Score Rubrics:\n[...]\n\n###Feedback: ")
GOOD = {
    "llmbar": (lambda o, s: record_from_llmbar(o, s, "llmbar", "Natural"),
               {"input": "q", "output_1": "a", "output_2": "b", "label": 1}),
    "judgebench": (lambda o, s: record_from_judgebench(o, s, "gpt-4o"),
                   {"pair_id": "p", "source": "mmlu-pro-law", "question": "q", "response_A": "a", "response_B": "b",
                    "label": "A>B"}),
    "rewardbench": (record_from_rewardbench, {"id": 1, "section": "Chat", "subset": "alpacaeval-easy", "prompt": "q",
                                              "chosen": "a", "rejected": "b"}),
    "prometheus": (lambda o, s: record_from_prometheus(o, s, "vicuna"),
                   {"idx": 1, "response_source": "m", "category": "c", "gpt4_score": [3, 4, 4],
                    "instruction": PROMETHEUS_PROMPT}),
}


@pytest.mark.parametrize("adapter, change, field", [
    ("llmbar", {"label": 3}, "label"), ("llmbar", {"output_2": None}, "output_2"),
    ("judgebench", {"label": "A=B"}, "label"), ("judgebench", {"source": "gsm8k"}, "source"),
    ("rewardbench", {"subset": "alpaca"}, "subset"), ("rewardbench", {"section": "Safety"}, "section"),
    ("rewardbench", {"id": "x1"}, "id"),
    ("prometheus", {"gpt4_score": [6]}, "gpt4_score"),
    ("prometheus", {"instruction": PROMETHEUS_PROMPT.replace("###Response to evaluate:", "")}, "instruction"),
])
def test_adapter_errors_name_file_line_and_field(tmp_path, adapter, change, field):
    convert, good = GOOD[adapter]
    path = tmp_path / "data.jsonl"
    # distinct ids, so the second row fails on the changed field and not as a duplicate of the first
    bad = {**good, **change, "idx": 2, "pair_id": "p2", "id": change.get("id", 3)}
    path.write_text(json.dumps(good) + "\n" + json.dumps({k: v for k, v in bad.items() if k in good}) + "\n")
    with pytest.raises(RecordError) as e:
        load_files({path: convert})
    assert (e.value.source.path, e.value.source.line, e.value.field) == (str(path), 2, field)
    skipped = load_files({path: convert}, skip_invalid=True)
    assert len(skipped.records) == 1 and skipped.rejects[0].field == field


def test_unknown_spec_names_the_benchmarks():
    with pytest.raises(FileNotFoundError, match="judgebench"):
        load_dataset("no-such-benchmark")
    with pytest.raises(ValueError, match="takes no argument"):
        load_dataset("pandalm:/tmp")
