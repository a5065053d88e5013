"""RocketEval: the grading prompt byte for byte, checklist files and units, the yes-probability and the predictor
against cases computed by hand, and the board a checklist-graded store makes."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from judgelm.data.answers import load_answers
from judgelm.data.checklists import load_checklists, parse_generated
from judgelm.data.pairing import item_index, pair_records
from judgelm.judging.config import JudgeConfig
from judgelm.profiles import JudgeProfileConfig, make_profile
from judgelm.profiles.prompts import Mode
from judgelm.profiles.rocketeval import CHECKLIST_TEMPLATE, GRADING_TEMPLATE, checklist_prompt
from judgelm.scoring import checklist

# sha256 of config/template/grading.md and create.md of Joinn99/RocketEval-ICLR at e0579ffafdb1157b455fa7835ccf33cb4
# 3b9dba3 (`git show HEAD:config/template/grading.md | sha256sum`).
GRADING_SHA256 = "e163bf4d06cd3d1c803a922038914f87a4013f4c1dca47a0e39194c53589b236"
CREATE_SHA256 = "8ed7b3f6f731094714de7f6be821381cb95ccb35d1e22548ff8ae67e5c5fe8d2"


def test_templates_are_rocketevals():
    assert hashlib.sha256(GRADING_TEMPLATE.encode()).hexdigest() == GRADING_SHA256
    assert hashlib.sha256(CHECKLIST_TEMPLATE.encode()).hexdigest() == CREATE_SHA256


def test_render_fills_the_grading_template_and_parse_reads_the_first_word():
    profile = make_profile(JudgeProfileConfig(profile="rocketeval"))
    prompt = profile.render("Name a prime.", ["Does the response name a prime?", "7"], None, Mode.SINGLE)
    assert prompt.chat and prompt.system is None
    assert "<|begin_of_history|>\n\n\n\n<|end_of_history|>" in prompt.user
    assert "<|begin_of_query|>\n\nName a prime.\n\n<|end_of_query|>" in prompt.user
    assert "<|begin_of_response|>\n\n7\n\n<|end_of_response|>" in prompt.user
    assert "<|begin_of_question|>\n\nDoes the response name a prime?\n\n<|end_of_question|>" in prompt.user
    assert prompt.user.endswith("Your answer (Yes/No): ")
    assert profile.parse(" yes", Mode.SINGLE, 1) == (1.0,) and profile.parse("No.", Mode.SINGLE, 1) is None
    assert profile.parse("NO", Mode.SINGLE, 1) == (0.0,) and profile.parse("maybe", Mode.SINGLE, 1) is None
    assert "{{question1}}" not in checklist_prompt("q", "ref").user and "\nq\n" in checklist_prompt("q", "ref").user


def test_profile_keeps_first_token_logprobs_unless_told_otherwise():
    cfg = JudgeConfig(judge=JudgeProfileConfig(profile="rocketeval"))
    assert (cfg.engine.logprobs_topk, cfg.engine.max_new_tokens, cfg.engine.mode) == (5, 1, "fast")
    cfg = JudgeConfig(judge=JudgeProfileConfig(profile="rocketeval"))
    cfg.engine.logprobs_topk = 20
    cfg.__post_init__()
    assert cfg.engine.logprobs_topk == 20


def test_checklist_files_and_records(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"session_id": "q1", "checklist": ["Is it red?", "Is it round?"]}) + "\n"
                    + json.dumps({"question": "Second?", "checklist": ["Is it short?"]}) + "\n")
    checklists = load_checklists(path)
    answers = tmp_path / "a.jsonl"
    answers.write_text("".join(json.dumps(r) + "\n" for r in [
        {"question_id": "q1", "question": "First?", "model": "m", "answer": "red ball"},
        {"question_id": "q1", "question": "First?", "model": "n", "answer": "blue cube"},
        {"question_id": "q2", "question": "Second?", "model": "m", "answer": "yes"},
        {"question_id": "q3", "question": "Third?", "model": "m", "answer": "no checklist"}]))
    records = pair_records(load_answers(f"generic:{answers}"), "checklist", checklists=checklists)
    assert [(r.question_id, r.answers, r.models) for r in records] == [
        ("q1", ("Is it red?", "red ball"), ("checklist:0", "m")), ("q1", ("Is it round?", "red ball"),
                                                                  ("checklist:1", "m")),
        ("q1", ("Is it red?", "blue cube"), ("checklist:0", "n")), ("q1", ("Is it round?", "blue cube"),
                                                                   ("checklist:1", "n")),
        ("q2", ("Is it short?", "yes"), ("checklist:0", "m"))]
    assert item_index(np.array([r.models[0] for r in records])).tolist() == [0, 1, 0, 1, 0]
    path.write_text('{"question_id": "q1", "checklist": []}\n')
    with pytest.raises(ValueError, match=r"c.jsonl:1: field 'checklist'"):
        load_checklists(path)


def test_generated_checklists_are_read_as_rocketeval_reads_them():
    text = "Here you go.\n## Checklist\n```\n1. Does it cite a source?\n2. Is the year 1969?\n3. No question\n```"
    assert parse_generated(text) == ["Does it cite a source?", "Is the year 1969?"]


def test_yes_probability_by_hand():
    vocab = {0: "Yes", 1: " no", 2: "Maybe", 3: " yes", 4: "NO"}
    ids = np.array([[[0, 1, 2]], [[2, 3, 4]], [[2, 2, 2]], [[1, 2, 4]]], dtype=np.int32)
    with np.errstate(divide="ignore"):
        lp = np.log(np.array([[[0.6, 0.2, 0.1]], [[0.5, 0.3, 0.1]], [[0.9, 0.0, 0.0]], [[0.3, 0.2, 0.1]]]))
    p = checklist.yes_probability(ids, lp, vocab.__getitem__)
    # unit 0: 0.6 / (0.6 + 0.2); unit 1: " yes" 0.3, "NO" 0.1 -> 0.75; unit 2: neither -> NaN; unit 3: no "Yes" -> 0
    np.testing.assert_allclose(p, [0.75, 0.75, np.nan, 0.0])


def test_predictor_by_hand():
    p = np.array([[1.0, 0.5, np.nan], [0.0, 0.0, 0.5], [0.5, 0.5, 0.5]])
    # Unsupervised: 9 × mean of the available items + 1.
    np.testing.assert_allclose(checklist.predict(p).score, [9 * 0.75 + 1, 9 / 6 + 1, 5.5])
    # Weight: reference scores 2, 2, 8 give a histogram (2/3, 1/3) over 10 bins; KL to uniform over 10 bins:
    kl = 2 / 3 * math.log(2 / 3 * 10) + 1 / 3 * math.log(1 / 3 * 10)
    assert checklist.spread_weight(np.array([2, 2, 8])) == pytest.approx((math.log(10) - kl) / math.log(10))
    assert checklist.spread_weight(np.array([5, 5])) == pytest.approx(0)  # all equal: trust the average
    # Supervised on rows 0 and 1 with equal targets: the trees predict 4 everywhere, the weight is 0.
    same = checklist.predict(p[:, :2], np.array([0, 1]), np.array([4.0, 4.0]))
    assert same.weight == 0 and np.allclose(same.score, checklist.predict(p[:, :2]).score)
    # Two distinct targets: histogram (1/2, 1/2), so w = (log 10 − log 5) / log 10 = log10(2); every random split of
    # the trees separates the two training rows (they differ in both items), so the trees return their targets.
    fitted = checklist.predict(p[:, :2], np.array([0, 1]), np.array([9.0, 2.0]))
    w = math.log10(2)
    plain = checklist.predict(p[:, :2]).score
    assert fitted.weight == pytest.approx(w)
    np.testing.assert_allclose(fitted.score[:2], w * np.array([9.0, 2.0]) + (1 - w) * plain[:2])


def test_preferences_with_the_tie_margin():
    a, b = np.array([5.0, 5.0, 5.0, np.nan]), np.array([5.05, 5.2, 4.8, 5.0])
    assert checklist.preferences(a, b).tolist()[:3] == [0.5, 1.0, 0.0]
    assert np.isnan(checklist.preferences(a, b)[3])


def test_checklist_pairing_and_profile_go_together(tmp_path, capsys):
    from launch import evaluate

    assert evaluate.main([f"runs_dir={tmp_path}", "run=x", "evaluate.pairing=checklist"]) == 2
    assert capsys.readouterr().err.strip() == ("error: RocketEval grades checklists: use evaluate.pairing=checklist "
                                               "with judge.profile=rocketeval (got pairing checklist, profile judgelm)")
    assert not (tmp_path / "x").exists()


def test_checklist_grading_of_conversations_judges_their_first_turns_or_refuses(tmp_path, capsys):
    """RocketEval's grading prompt is of one turn: two-turn MT-Bench answers are refused with the profile's line,
    and ``prompt.turns=1`` grades the first turns of the questions that have a checklist."""
    from pathlib import Path

    from launch import evaluate

    synthetic = Path(__file__).resolve().parents[1] / "data" / "evaluation" / "mt_bench_synthetic"
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"question_id": q, "checklist": ["Is it on topic?", "Is it short?"]}) + "\n"
                            for q in (81, 131)))
    args = [f"runs_dir={tmp_path}", "run=x", f"evaluate.answers=[fastchat:{synthetic}]", "evaluate.pairing=checklist",
            "judge.profile=rocketeval", f"evaluate.checklists={path}", "evaluate.baseline=echo-bot",
            "evaluate.reference_verdicts=''"]
    assert evaluate.main(args) == 2
    assert capsys.readouterr().err.startswith("error: judge.profile=rocketeval has no multi-turn form, and the data "
                                              "has 2-turn conversations;")
    assert not (tmp_path / "x").exists()
    ev = evaluate.EvaluationConfig(answers=[f"fastchat:{synthetic}"], pairing="checklist", checklists=str(path))
    data = evaluate.evaluation_data(ev, turns=1)
    assert sorted(data.questions) == ["131", "81"] and all(len(q.turns) == 1 for q in data.questions.values())
    records = evaluate.evaluation_records(ev, data).records
    assert len(records) == 2 * 3 * 2 and {r.n_turns for r in records} == {1}  # 2 questions x 3 models x 2 items
    first = records[0]
    assert first.answers == ("Is it on topic?", data.answers[str(first.question_id)][first.models[1]][0])
