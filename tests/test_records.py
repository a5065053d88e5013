"""Record loading: every bad record is named by file, line and field, or skipped into rejects when asked."""

import json

import pytest

from judgelm.data.benchmarks import load_dataset
from judgelm.data.records import RecordError, load_records, write_rejects


def good(qid, **extra):
    return {"question_id": qid, "question_body": "\nWhat is 2+2?", "answer1_body": "4", "answer2_body": "5", **extra}


def write_lines(path, lines):
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines))
    return path


def test_judgelm_fields_reference_and_ground_truth(tmp_path):
    f = write_lines(tmp_path / "d.jsonl", [
        good(1, text="8 3\nAssistant 1 is right.", score=[8.0, 3.0],
             reference={"decoding_method": "None", "model": "gpt4", "text": "4"}, text_w_reference="9 1\n..."),
        good("q2", label=0, subset="s", category="math"),
        good(3, text="no scores here", score=[{"logprob": -1.2}, {"logprob": -0.3}]),  # val-5k reuses `score`
        good(4, score=[2, 7]),
    ])
    recs = load_records(f).records
    assert [r.question_id for r in recs] == [1, "q2", 3, 4]
    assert recs[0].question == "\nWhat is 2+2?"  # text is kept raw
    assert recs[0].reference == "4" and recs[0].gt_scores == (8.0, 3.0)
    assert recs[0].gt_label() == 1 and recs[0].gt_label(with_reference=True) == 1
    assert recs[1].gt_label() == 0 and recs[1].subset == "s" and recs[1].category == "math"
    assert recs[2].gt_scores is None and recs[2].gt_label() is None  # unparseable GT is dropped from metrics
    assert recs[3].gt_label() == -1


def test_an_unparseable_with_reference_judgement_drops_the_pair_like_judgelm(tmp_path):
    f = write_lines(tmp_path / "d.jsonl", [good(1, text="8 2\n...", text_w_reference="error"), good(2, text="8 2\n..."),
                                           good(3, text_w_reference="2 9\n...", label=1)])
    a, b, c = load_records(f).records
    assert a.gt_label() == 1 and a.gt_label(with_reference=True) is None  # not the no-reference verdict
    assert b.gt_label(with_reference=True) == 1  # no with-reference judgement at all: the other one stands in
    assert c.gt_label() == 1 and c.gt_label(with_reference=True) == -1


@pytest.mark.parametrize("line, field, reason", [
    (b'{"question_id": 2, "question_body": "q", ', None, "bad JSON"),
    (json.dumps({"question_id": 2, "question_body": "q", "answer1_body": "a"}).encode(), "answer2_body", "missing"),
    (json.dumps(good(2, question_body="   ")).encode(), "question_body", "empty"),
    (json.dumps(good(2, answer2_body=5)).encode(), "answer2_body", "expected a string, got int"),
    (json.dumps(good(2.5)).encode(), "question_id", "expected an integer or a string, got float"),
    (json.dumps(good(1)).encode(), "question_id", "duplicate id 1 (first seen at"),
    (json.dumps(good(2, label=2)).encode(), "label", "expected one of"),
    (json.dumps(good(2, reference={"model": "x"})).encode(), "reference.text", "expected a string"),
    ('{"question_id": 2, "question_body": "caf\xe9"}'.encode("latin-1"), None, "not valid UTF-8"),
    (b"[1, 2]", None, "expected a JSON object, got list"),
])
def test_bad_record_error_names_file_line_and_field(tmp_path, line, field, reason):
    f = write_lines(tmp_path / "bad.jsonl", [good(1), b"", line])
    with pytest.raises(RecordError) as e:
        load_records(f)
    assert e.value.source.path == str(f) and e.value.source.line == 3
    assert e.value.field == field
    assert reason in e.value.reason
    assert str(e.value).startswith(f"{f}:3")


def test_skip_invalid_collects_rejects_and_keeps_going(tmp_path):
    f = write_lines(tmp_path / "mixed.jsonl", [good(1), b"{oops", good(2, question_body=""), good(3), good(1)])
    loaded = load_records(f, skip_invalid=True)
    assert [r.question_id for r in loaded.records] == [1, 3]
    assert [(r.source.line, r.field) for r in loaded.rejects] == [(2, None), (3, "question_body"), (5, "question_id")]
    write_rejects(loaded.rejects, tmp_path / "rejects.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert rows[1] == {**rows[1], "line": 3, "field": "question_body", "reason": "empty"}
    assert '"question_body": ""' in rows[1]["raw"]


def test_json_list_files_name_the_item(tmp_path):
    f = tmp_path / "d.json"
    f.write_text(json.dumps([good(1), good(2, question_body=None)]))
    with pytest.raises(RecordError, match=r"d.json\[item 1\]: field 'question_body': missing"):
        load_records(f)


def test_missing_file_and_unknown_benchmark(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_records(tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError, match="neither a benchmark"):
        load_dataset("no-such-benchmark")


def test_pandalm_default_benchmark_uses_the_human_majority():
    recs = load_dataset("pandalm").records
    assert len(recs) == 999
    assert [sum(r.label == v for r in recs) for v in (1, 0, -1)] == [422, 105, 472]
    by_id = {r.question_id: r for r in recs}
    assert by_id[0].question.startswith("The sentence you are given might be too wordy")
    assert by_id[0].question.endswith("\nIf you have any questions about my rate or if you find it necessary to "
                                      "increase or decrease the scope for this project, please let me know.")
    assert by_id[157].answers[0] == "True"  # the file's JSON `true` is a model that answered "True"


def test_empty_answers_are_data_rendered_raw_and_counted(tmp_path):
    from judgelm.profiles.prompts import build_prompt

    f = write_lines(tmp_path / "d.jsonl", [good(1, answer2_body=""), good(2, answer1_body=" \n"), good(3)])
    loaded = load_records(f)
    assert [r.answers for r in loaded.records][:2] == [("4", ""), (" \n", "5")]
    assert loaded.empty_answers == 2 and not loaded.rejects
    prompt = build_prompt(loaded.records[0].question, loaded.records[0].answers)
    # as JudgeLM renders ""
    assert "[The Start of Assistant 2's Answer]\n\n\n[The End of Assistant 2's Answer]" in prompt


def test_a_blank_reference_is_no_reference(tmp_path):
    f = write_lines(tmp_path / "d.jsonl",
                    [good(1, reference="  "), good(2, reference={"text": "\n"}), good(3, reference="4")])
    assert [r.reference for r in load_records(f).records] == [None, None, "4"]


def test_utf8_bom_is_accepted_in_jsonl_and_json(tmp_path):
    bom = b"\xef\xbb\xbf"
    (tmp_path / "d.jsonl").write_bytes(bom + json.dumps(good(1)).encode() + b"\n" + json.dumps(good(2)).encode())
    (tmp_path / "d.json").write_bytes(bom + json.dumps([good(1)]).encode())
    assert len(load_records(tmp_path / "d.jsonl").records) == 2 and len(load_records(tmp_path / "d.json").records) == 1


def test_a_directory_says_it_is_a_directory_even_when_skipping(tmp_path):
    for skip in (False, True):
        with pytest.raises(RecordError, match="is a directory"):
            load_dataset(str(tmp_path), skip_invalid=skip)


def test_missing_question_id_points_to_the_generic_adapter(tmp_path):
    f = write_lines(tmp_path / "plain.jsonl", [{"prompt": "q", "response 1": "a", "response 2": "b", "label": 0}])
    with pytest.raises(RecordError) as e:
        load_records(f)
    assert e.value.field == "question_id" and "DATA=generic:mapping.yaml" in str(e.value)
    assert "\n" not in str(e.value)


def test_a_json_object_of_lists_is_read_list_after_list(tmp_path):
    f = tmp_path / "groups.json"
    f.write_text(json.dumps({"a": [good(1), good(2)], "b": [good(3)]}))
    assert [r.question_id for r in load_records(f).records] == [1, 2, 3]
    f.write_text(json.dumps({"a": [good(1)], "b": 3}))
    with pytest.raises(RecordError, match="must hold a list"):
        load_records(f)


@pytest.mark.parametrize("text, lone", [("\\ud83d\\ude00 ok", False), ("\\uD83D\\uDE00", False),
                                        ("\\ud83d\\ud83d\\ude00", True), ("x \\ude00", True),
                                        ("\\ud83d\\ude00\\ude00", True), ("\\ud83d", True)])
def test_only_a_lone_escaped_surrogate_half_is_refused_in_a_json_list(tmp_path, text, lone):
    """A file's escapes are checked pair by pair (most data escapes emoji as pairs, fine); a lone half anywhere,
    before a pair, after one, or at the end, names its item."""
    from judgelm.data.records import iter_dicts, iter_json_objects
    path = tmp_path / "items.json"
    path.write_text('[{"a": "plain"}, {"b": "' + text + '"}]')
    objects = [obj for _, obj, _ in iter_json_objects(path)]
    assert isinstance(objects[1], RecordError) == lone and not isinstance(objects[0], RecordError)
    if lone:
        with pytest.raises(RecordError, match=r"items.json\[item 1\]: field 'b': holds a lone UTF-16 surrogate"):
            list(iter_dicts(path))
    else:
        assert [obj for _, obj in iter_dicts(path)][1] == json.loads('{"b": "' + text + '"}')
