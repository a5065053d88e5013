"""Multi-turn conversations (MT-Bench's two turns): records, units, the store, prompts and the per-turn leaderboard.

The MT-Bench prompts' golden files are in tests/test_profiles.py, the fastchat loader's round trip in
tests/test_evaluation_answers.py.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from judgelm.data.records import Loaded, RecordError, Turn, load_records
from judgelm.inference.prepare import unit_texts
from judgelm.judging.store import VerdictStore
from judgelm.judging.units import plan_units
from judgelm.profiles import JudgeProfileConfig, UnsupportedMode, make_profile
from judgelm.profiles.judgelm_profile import conversation_question
from judgelm.profiles.prompts import Mode, build_prompt
from judgelm.results.leaderboard import REFERENCE_JSON
from judgelm.rundir import RunDir
from launch import evaluate

REPO = Path(__file__).resolve().parents[1]
TINY_JUDGE = REPO / "models" / "tiny-judge"
SYNTHETIC = REPO / "data" / "evaluation" / "mt_bench_synthetic"
ALPACA_EVAL = REPO / "data" / "evaluation" / "alpaca_eval" / "alpaca-7b" / "annotations.json"

CONVERSATION = {"question_id": "c1", "question_body": ["Name a prime.", "And {the} next one?"],
                "answer1_body": ["2", "3"], "answer2_body": ["4", ""], "reference": {"text": ["2", "3"]},
                "category": "math"}


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_conversation_record_carries_every_turn(tmp_path):
    single = {"question_id": "s1", "question_body": "Q", "answer1_body": "a", "answer2_body": "b"}
    loaded = load_records(write(tmp_path / "d.jsonl", [CONVERSATION, single]))
    conv, one = loaded.records
    assert [(t.question, t.answers, t.reference) for t in conv.turns()] == [
        ("Name a prime.", ("2", "4"), "2"), ("And {the} next one?", ("3", ""), "3")]
    assert (conv.n_turns, one.n_turns, conv.category) == (2, 1, "math")
    assert loaded.empty_answers == 1  # an empty reply to a later turn is data, counted like any other
    assert conv.first_turns(1).n_turns == 1 and conv.first_turns(1).answers == ("2", "4")


@pytest.mark.parametrize("change, field, reason", [
    ({"answer2_body": ["4"]}, "answer2_body", "has 1 turns, question_body has 2"),
    ({"answer1_body": "2"}, "answer1_body", "expected a list of 2 turns"),
    ({"question_body": ["Name a prime.", " "]}, "question_body[1]", "empty"),
    ({"answer1_body": ["2", 3]}, "answer1_body[1]", "expected a string, got int"),
    ({"reference": ["2", ""]}, "reference[1]", "empty while other turns have a reference"),
    ({"label": 1}, "label", "ground truth of a multi-turn record is not supported"),
])
def test_a_bad_conversation_names_file_line_and_field(tmp_path, change, field, reason):
    path = write(tmp_path / "d.jsonl", [{"question_id": 0, "question_body": "Q", "answer1_body": "a",
                                        "answer2_body": "b"}, {**CONVERSATION, **change}])
    with pytest.raises(RecordError, match=reason) as e:
        load_records(path)
    assert (e.value.source.line, e.value.field) == (2, field) and f"{path}:2: field '{field}'" in str(e.value)


def test_each_turn_is_a_unit_whose_prompt_shows_the_conversation_so_far(tmp_path):
    records = load_records(write(tmp_path / "d.jsonl", [CONVERSATION])).records
    plan = plan_units(records, "pair", "both", "both")
    assert list(zip(plan.turn.tolist(), plan.with_reference.tolist(), plan.order.tolist())) == [
        (0, False, 0), (0, False, 1), (0, True, 0), (0, True, 1), (1, False, 0), (1, False, 1), (1, True, 0),
        (1, True, 1)]
    store = VerdictStore.create(tmp_path / "s.zarr", records, plan, n_scores=2, chunk_units=8)
    store = VerdictStore(store.path)  # as a shard opens it
    assert store.n_turns == 2 and store.units("turn").tolist() == plan.turn.tolist()
    assert store.answer_chars_by_turn().tolist() == [[[1, 1], [1, 0]]]
    inputs = store.chunk_inputs(0)
    assert unit_texts(inputs, 0, Mode.PAIR) == ("Name a prime.", ["2", "4"], None, ())
    # Turn 2, swapped, with the reference: the earlier turn is swapped too and shows its reference.
    assert unit_texts(inputs, 7, Mode.PAIR) == ("And {the} next one?", ["", "3"], "3",
                                                (Turn("Name a prime.", ("4", "2"), "2"),))
    assert unit_texts(inputs, 5, Mode.PAIR)[3] == (Turn("Name a prime.", ("4", "2"), None),)


def test_judgelm_renders_a_later_turn_with_the_conversation_in_its_question_field():
    history = (Turn("Name a prime.", ("2", "4"), "2"),)
    question = conversation_question("And {the} next one?", history)
    assert question == ("### User:\nName a prime.\n\n### Reference answer:\n2\n\n### Assistant 1:\n2\n\n"
                        "### Assistant 2:\n4\n\n### User:\nAnd {the} next one?")
    judgelm = make_profile(JudgeProfileConfig())
    for mode in (Mode.PAIR, Mode.SINGLE):
        prompt = judgelm.render_unit("And {the} next one?", ["3", "5"], "3", mode, history)
        assert prompt.user == build_prompt(question, ["3", "5"], "3", mode)  # JudgeLM's template, byte for byte
    # The first turn is rendered exactly like a single-turn record.
    assert judgelm.render_unit("Name a prime.", ["2", "4"], None, Mode.PAIR).user == build_prompt(
        "Name a prime.", ["2", "4"])


def test_profiles_without_a_long_enough_multi_turn_form_refuse():
    third = (Turn("q1", ("a", "b")), Turn("q2", ("c", "d")))
    with pytest.raises(UnsupportedMode, match="at most 2 turns.*prompt.turns=2, or every turn with judge.profile="
                                              "judgelm"):
        make_profile(JudgeProfileConfig(profile="mtbench-gpt4")).render_unit("q3", ["e", "f"], None, Mode.PAIR, third)
    for name in ("pandalm", "prometheus2", "autoj", "chat", "arena-hard", "arena-hard-creative", "rocketeval"):
        with pytest.raises(UnsupportedMode, match=f"judge.profile={name} has no multi-turn form"):
            make_profile(JudgeProfileConfig(profile=name)).check_turns(2)


def evaluate_synthetic(tmp_path, run: str, *args: str) -> int:
    """``make evaluate`` on the shipped two-turn answers (data/evaluation/mt_bench_synthetic) with the tiny judge."""
    return evaluate.main([f"model.path={TINY_JUDGE}", f"runs_dir={tmp_path}", f"run={run}", "shards=1",
                          f"evaluate.answers=[fastchat:{SYNTHETIC}]", "evaluate.baseline=echo-bot",
                          "evaluate.reference_verdicts=''", *args])


def test_a_reference_judge_that_annotated_none_of_the_questions_is_skipped(tmp_path, caplog):
    rd = RunDir(tmp_path / "run")
    rd.root.mkdir()
    records = load_records(write(tmp_path / "d.jsonl", [CONVERSATION])).records
    ev = evaluate.EvaluationConfig(reference_verdicts=str(ALPACA_EVAL))
    evaluate.write_reference(rd, ev, evaluate.reference_rows(ev, Loaded(records)))
    assert not (rd.root / REFERENCE_JSON).exists()
    assert "annotates none of the 1 evaluated questions" in caplog.text


def test_a_profile_without_a_multi_turn_form_refuses_at_run_creation_with_one_line(tmp_path, capsys):
    assert evaluate_synthetic(tmp_path, "panda", "judge.profile=pandalm") == 2
    err = capsys.readouterr().err
    assert err == ("error: judge.profile=pandalm has no multi-turn form, and the data has 2-turn conversations; "
                   "judge every turn with judge.profile=judgelm or mtbench-gpt4, or only the first turn with "
                   "prompt.turns=1\n")
    assert not (tmp_path / "panda").exists()


@pytest.mark.slow  # three evaluations with the tiny judge on the local executor
def test_tiny_judge_evaluation_of_two_turn_answers_has_per_turn_rows(tmp_path, capsys):
    # Four questions spread over the eight (81 writing, 101 reasoning with GPT-4's reference, 131, 151), two models
    # against echo-bot, both orders: 4 x 2 x 2 turns x 2 orders = 32 units, plus 8 with the reference.
    assert evaluate_synthetic(tmp_path, "pair", "evaluate.limit=4", "evaluate.models=[short-bot,long-bot]") == 0
    out = capsys.readouterr().out
    assert "0 of 40 units from the verdict cache, 40 judged." in out
    assert "Win rate per turn" in out and "| model | turn 1 | turn 2 | all turns |" in out
    lb = json.loads((tmp_path / "pair" / "leaderboard.json").read_text())
    assert "tiny judge" in lb["note"]
    board = lb["boards"]["without_reference"]
    rows = {r["model"]: r for r in board["rows"]}
    assert set(board["turns"]) == {"1", "2"}
    for model in ("short-bot", "long-bot"):
        per_turn = [next(r for r in board["turns"][t]["rows"] if r["model"] == model) for t in ("1", "2")]
        assert [r["n_total"] for r in per_turn] == [4, 4] and rows[model]["n_total"] == 8
        # Overall is every judged turn: the mean of the two turns' win rates, each over as many comparisons.
        assert rows[model]["win_rate"] == pytest.approx(np.mean([r["win_rate"] for r in per_turn]))
    assert {r["n_total"] for r in lb["boards"]["with_reference"]["turns"]["2"]["rows"]} == {1}  # question 101 only
    # Again, in two shards: both turns' verdicts come from the verdict cache (keyed by each turn's own prompt).
    assert evaluate_synthetic(tmp_path, "again", "evaluate.limit=4", "evaluate.models=[short-bot,long-bot]",
                              "shards=2") == 0
    assert "40 of 40 units from the verdict cache, 0 judged." in capsys.readouterr().out
    again = json.loads((tmp_path / "again" / "leaderboard.json").read_text())["boards"]["without_reference"]
    assert again["turns"] == board["turns"] and again["rows"] == board["rows"]

    # MT-Bench's protocol: single-answer grading, the reference shown where the category needs one (101) and not
    # elsewhere, so one board over all questions; each turn judged once.
    assert evaluate_synthetic(tmp_path, "single", "evaluate.limit=4", "evaluate.pairing=single",
                              "evaluate.models=[short-bot]", "prompt.reference=with") == 0
    assert "Mean score per turn" in capsys.readouterr().out
    lb = json.loads((tmp_path / "single" / "leaderboard.json").read_text())
    (name, board), = lb["boards"].items()
    assert name == "single_reference_where_available"
    assert [r["n_total"] for t in ("1", "2") for r in board["turns"][t]["rows"]] == [4, 4]
    assert board["rows"][0]["model"] == "short-bot" and board["rows"][0]["n_total"] == 8
    store = VerdictStore(tmp_path / "single" / "verdicts.zarr")
    assert store.units("turn").tolist().count(1) == 4 and store.units("with_reference").sum() == 2
