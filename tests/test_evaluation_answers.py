"""Answer loaders (every format, on real files) and pairing plans, with their errors."""

import json
from pathlib import Path

import pytest

from judgelm.data.answers import load_answers
from judgelm.data.pairing import REFERENCE_MODEL, pair_records, spread_questions
from judgelm.data.records import RecordError

DATA = Path(__file__).resolve().parents[1] / "data" / "evaluation"


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def mt_bench_dir(root: Path, question_ids: tuple[int, ...], models: tuple[str, ...]) -> Path:
    """The shipped MT-Bench questions ``question_ids`` and GPT-4 references in FastChat's layout, with a two-turn
    answer of each model written as FastChat's gen_model_answer.py writes it."""
    (root / "reference_answer").mkdir(parents=True)
    ref = DATA / "mt_bench" / "reference_answer" / "gpt-4.jsonl"
    (root / "reference_answer" / "gpt-4.jsonl").write_text(ref.read_text())
    qs = {json.loads(q)["question_id"]: q for q in (DATA / "mt_bench" / "question.jsonl").read_text().splitlines()}
    (root / "question.jsonl").write_text("".join(qs[q] + "\n" for q in question_ids))
    for model in models:
        jsonl(root / "model_answer" / f"{model}.jsonl", [
            {"question_id": q, "answer_id": f"{model}-{q}", "model_id": model,
             "choices": [{"index": 0, "turns": [f"{model} on {q}", f"{model} again on {q}:\n{{x}} ✓"]}],
             "tstamp": 1700000000.0} for q in question_ids])
    return root


def test_fastchat_loader_round_trips_every_turn_and_the_references(tmp_path):
    # A writing question, a math question with a GPT-4 reference, and extraction question 131, whose own
    # `reference` FastChat does not use (extraction is not among the categories judged with a reference).
    root = mt_bench_dir(tmp_path / "mt_bench", (81, 111, 131), ("vicuna", "llama"))
    data = load_answers(f"fastchat:{root}")
    assert data.models == ["llama", "vicuna"] and list(data.questions) == ["81", "111", "131"]
    for row in map(json.loads, (root / "question.jsonl").read_text().splitlines()):
        assert data.questions[str(row["question_id"])].turns == tuple(row["turns"])
    for model in data.models:
        for row in map(json.loads, (root / "model_answer" / f"{model}.jsonl").read_text().splitlines()):
            assert data.answers[str(row["question_id"])][model] == tuple(row["choices"][0]["turns"])
    gpt4 = {r["question_id"]: r for r in map(json.loads, (root / "reference_answer" / "gpt-4.jsonl").open())}
    assert data.questions["111"].references == tuple(gpt4[111]["choices"][0]["turns"])
    assert data.questions["81"].references is None and data.questions["131"].references is None
    # Pairing keeps every turn: turn 2 of a record holds the second question, both second answers, the reference.
    (record,) = [r for r in pair_records(data, "all-pairs") if r.question_id == 111]
    assert [t.question for t in record.turns()] == list(data.questions["111"].turns)
    assert [t.answers for t in record.turns()] == [("llama on 111", "vicuna on 111"),
                                                  ("llama again on 111:\n{x} ✓", "vicuna again on 111:\n{x} ✓")]
    assert [t.reference for t in record.turns()] == list(gpt4[111]["choices"][0]["turns"])
    with pytest.raises(ValueError, match="question 81 has no reference answer"):  # single grading needs a gold answer
        pair_records(data, "single")
    # The reference is the gold answer where there is one (and shown as the reference), the baseline's elsewhere.
    anchored = pair_records(data, "single", baseline="llama")
    assert [(r.question_id, r.models) for r in anchored] == [
        (81, ("llama", "vicuna")), (111, (REFERENCE_MODEL, "llama")), (111, (REFERENCE_MODEL, "vicuna")),
        (131, ("llama", "vicuna"))]
    assert anchored[1].later_turns[0].answers[0] == anchored[1].later_turns[0].reference == gpt4[111]["choices"][0][
        "turns"][1]


def test_a_model_missing_a_turn_is_refused_unless_only_first_turns_are_judged(tmp_path):
    root = mt_bench_dir(tmp_path / "mt_bench", (81,), ("vicuna", "llama"))
    jsonl(root / "model_answer" / "short.jsonl", [{"question_id": 81, "choices": [{"turns": ["only one"]}]}])
    data = load_answers(f"fastchat:{root}")
    with pytest.raises(ValueError, match=r"model 'short' answered 1 of the 2 turns of question 81; .* prompt.turns=1"):
        pair_records(data, "vs-baseline", baseline="short")
    records = pair_records(data.first_turns(1), "vs-baseline", baseline="short")
    assert [r.n_turns for r in records] == [1, 1]
    jsonl(root / "model_answer" / "long.jsonl", [{"question_id": 81, "choices": [{"turns": ["1", "2", "3"]}]}])
    with pytest.raises(RecordError, match="3 turns, but question '81' has 2") as e:
        load_answers(f"fastchat:{root}")
    assert e.value.field == "choices[0].turns" and e.value.source.line == 1


def test_alpaca_eval_files_share_instruction_ids(tmp_path):
    ann = json.loads((DATA / "alpaca_eval" / "alpaca-7b" / "annotations.json").read_text())[:4]
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    outputs = [{"instruction": a["instruction"], "output": f"mine {i}", "generator": "mine", "dataset": a["dataset"]}
               for i, a in enumerate(reversed(ann))]
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    data = load_answers([f"alpaca_eval_annotations:{tmp_path / 'ann.json'}",
                         f"alpaca_eval:{tmp_path / 'outputs.json'}"])
    assert data.models == ["alpaca-7b", "gpt4_1106_preview", "mine"] and len(data.questions) == 4
    assert data.answers["0"]["mine"] == ("mine 3",) and data.questions["0"].category == ann[0]["dataset"]
    records = pair_records(data, "vs-baseline", baseline="gpt4_1106_preview")
    assert len(records) == 8 and all(r.models[0] == "gpt4_1106_preview" for r in records)
    assert records[0].answers == (ann[0]["output_1"], ann[0]["output_2"])


def test_judgelm_and_generic_formats(tmp_path):
    pairs = jsonl(tmp_path / "pairs.jsonl", [
        {"question_id": 1, "question_body": "Q1", "answer1_body": "a", "answer2_body": "b",
         "answer1_model_id": "m1", "answer2_model_id": "m2", "reference": {"text": "gold"}},
        {"question_id": 1, "question_body": "Q1", "answer1_body": "a", "answer2_body": "c",
         "answer1_model_id": "m1", "answer2_model_id": "m3"}])
    generic = jsonl(tmp_path / "more.jsonl", [{"question_id": 2, "question": "Q2", "model": m, "answer": m + "!",
                                               "category": "math"} for m in ("m1", "m2", "m3")])
    data = load_answers([f"judgelm:{pairs}", f"generic:{generic}"])
    assert data.questions["1"].reference == "gold" and data.answers["1"] == {"m1": ("a",), "m2": ("b",), "m3": ("c",)}
    every = pair_records(data, "all-pairs")
    assert [(r.question_id, r.models) for r in every][:3] == [(1, ("m1", "m2")), (1, ("m1", "m3")), (1, ("m2", "m3"))]
    budget = pair_records(data, "all-pairs", budget=2, seed=5)
    assert len(budget) == 4 and budget == pair_records(data, "all-pairs", budget=2, seed=5)
    assert len(spread_questions(data, 1).questions) == 1


@pytest.mark.parametrize("rows, field, reason", [
    ([{"question_id": 1, "question": "Q", "model": "m"}], "answer", "missing"),
    ([{"question_id": 1.5, "question": "Q", "model": "m", "answer": "a"}], "question_id", "expected an integer"),
    ([{"question_id": 1, "question": "Q", "model": "m", "answer": "a"},
      {"question_id": 1, "question": "Other", "model": "n", "answer": "b"}], "question", "another text"),
    ([{"question_id": 1, "question": "Q", "model": "m", "answer": "a"},
      {"question_id": 1, "question": "Q", "model": "m", "answer": "b"}], "answer", "a second, different answer"),
])
def test_generic_errors_name_file_line_and_field(tmp_path, rows, field, reason):
    path = jsonl(tmp_path / "answers.jsonl", rows)
    with pytest.raises(RecordError, match=reason) as e:
        load_answers(f"generic:{path}")
    assert e.value.field == field and e.value.source.line == len(rows) and str(path) in str(e.value)


def test_unknown_format_model_or_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="FORMAT one of fastchat"):
        load_answers("sharegpt:x.json")
    with pytest.raises(FileNotFoundError, match="no file matches"):
        load_answers(f"generic:{tmp_path}/nothing*.jsonl")
    one = jsonl(tmp_path / "a.jsonl", [{"question_id": 1, "question": "Q", "model": "m", "answer": "a"}])
    data = load_answers(f"generic:{one}")
    with pytest.raises(ValueError, match=r"models \['gpt-5'\] have no answers"):
        pair_records(data, "vs-baseline", baseline="gpt-5")
