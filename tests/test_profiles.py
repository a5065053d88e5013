"""Judge profiles: prompts byte-identical to their authors' templates, parsers agreeing with their authors' parsers
on their documented outputs (golden files in tests/golden/profiles, sources in SOURCE.md there)."""

import json
from pathlib import Path

import pytest

from judgelm.data.records import Turn
from judgelm.inference.encode import encode_prompts
from judgelm.profiles import PROFILES, JudgeProfileConfig, make_profile, store_attrs
from judgelm.profiles.autoj import SINGLE
from judgelm.profiles.base import FIRST, SECOND, TIE, UnsupportedMode
from judgelm.profiles.prompts import Mode, build_prompt

GOLDEN = Path(__file__).parent / "golden" / "profiles"
QUESTION, ANSWERS, REFERENCE = "\nWhat is {x}?\n", ("Forty-two.", "{answer_2} 41"), "It is 42."
# The second turn of the same conversation (braces that str.format must leave alone)
QUESTION_2, ANSWERS_2, REFERENCE_2 = "And {y} doubled?", ("Eighty-four {a}.", "82 }{ {answer_b_1}"), "It is 84."
PANDALM_FIRST = " <s>Forty-two.</s> \n"  # PandaLM strips whitespace and special-token strings from responses


def golden_cases():
    for path in sorted(GOLDEN.glob("*/*.json")):
        if path.stem in ("pair", "pair_w_reference", "single", "single_w_reference"):
            yield pytest.param(path.parent.name, path.stem, id=f"{path.parent.name}/{path.stem}")


@pytest.mark.parametrize("name, case", list(golden_cases()))
def test_prompt_is_byte_identical_to_the_authors_template(name, case):
    expected = json.loads((GOLDEN / name / f"{case}.json").read_text())
    mode = Mode.PAIR if case.startswith("pair") else Mode.SINGLE
    answers = (PANDALM_FIRST, ANSWERS[1]) if name == "pandalm" else ANSWERS
    prompt = make_profile(JudgeProfileConfig(profile=name)).render(
        QUESTION, answers, REFERENCE if case.endswith("w_reference") else None, mode)
    assert (prompt.system, prompt.user) == (expected["system"], expected["user"])
    assert prompt.chat == (name in ("prometheus2", "mtbench-gpt4"))


@pytest.mark.parametrize("case", ["pair_turn2", "pair_turn2_w_reference", "single_turn2", "single_turn2_w_reference"])
def test_mtbench_second_turn_is_byte_identical_to_fastchats_multi_turn_templates(case):
    """FastChat's run_judge_pair/run_judge_single with multi_turn=True (golden files: tests/golden/profiles/SOURCE.md):
    both user turns, each assistant's two replies (single: the graded one's, slot 2), both reference replies."""
    expected = json.loads((GOLDEN / "mtbench-gpt4" / f"{case}.json").read_text())
    with_ref = case.endswith("w_reference")
    history = (Turn(QUESTION, ANSWERS, REFERENCE if with_ref else None),)
    prompt = make_profile(JudgeProfileConfig(profile="mtbench-gpt4")).render_unit(
        QUESTION_2, ANSWERS_2, REFERENCE_2 if with_ref else None, Mode.PAIR if case.startswith("pair") else Mode.SINGLE,
        history)
    assert (prompt.system, prompt.user, prompt.chat) == (expected["system"], expected["user"], True)


def test_autoj_single_prompt_matches_its_own_training_data():
    d = json.loads((GOLDEN / "autoj" / "single_traindata_0.json").read_text())
    assert SINGLE.format(prompt=d["query"], response=d["response"]) == d["usrmsg"]


def expected_scores(profile: str, mode: str, want):
    """The authors' verdict in store scores: their parse failure is ours (None)."""
    if want is None:
        return None
    if mode == "single":
        return (float(want),)
    if profile == "prometheus2":
        return {"A": FIRST, "B": SECOND}[want]
    return {0: TIE, 1: FIRST, 2: SECOND}[want]  # PandaLM's labels


EXAMPLES = json.loads((GOLDEN / "parser_examples.json").read_text())


@pytest.mark.parametrize("ex", EXAMPLES, ids=[f"{e['profile']}-{i}" for i, e in enumerate(EXAMPLES)])
def test_parser_agrees_with_the_authors_parser_on_their_examples(ex):
    profile = make_profile(JudgeProfileConfig(profile=ex["profile"]))
    got = profile.parse(ex["text"], Mode(ex["mode"]), 2 if ex["mode"] == "pair" else 1)
    assert got == expected_scores(ex["profile"], ex["mode"], ex["expected"])


@pytest.mark.parametrize("profile, mode, text, expected", [
    # Auto-J: the text after the last "final decision is " (its documented closing statement)
    ("autoj", "pair", "Response 1 is vague.\n\nSo, the final decision is Response 2.", SECOND),
    ("autoj", "pair", "the final decision is Response 2 ... So, the final decision is Tie", TIE),
    ("autoj", "pair", "So, the final decision is response 1", FIRST),
    ("autoj", "pair", "Response 1 is better.", None),
    ("autoj", "single", "Rating: [[3]] no, Rating: [[ 7.5 ]]", (7.5,)),
    ("autoj", "single", "Rating: [[7", None),
    # FastChat: [[A]]/[[B]]/[[C]] anywhere, in that order of precedence; [[N]] before the [N] fallback
    ("mtbench-gpt4", "pair", "A is more detailed.\n[[A]]", FIRST),
    ("mtbench-gpt4", "pair", "Final verdict: [[C]]", TIE),
    ("mtbench-gpt4", "pair", "Assistant B", None),
    ("mtbench-gpt4", "single", "Explanation.\nRating: [[5]]", (5.0,)),
    ("mtbench-gpt4", "single", "Rating: [8.5]", (8.5,)),
    ("mtbench-gpt4", "single", "Rating: 8", None),
    # chat: the last non-empty line only
    ("chat", "pair", "A is wrong.\nVerdict: B\n\n", SECOND),
    ("chat", "pair", "**Verdict:** Tie", TIE),
    ("chat", "pair", "Verdict: A\nbut maybe B", None),
    ("chat", "single", "Good.\nScore: 7", (7.0,)),
    # PandaLM: only the first line, exactly 1, 2 or tie
    ("pandalm", "single", "2\n\n### Reason: ...", (1.0,)),
    ("pandalm", "pair", "Response 1", None),
    # JudgeLM: its strict score line
    ("judgelm", "pair", "8 3\nAssistant 1 ...", (8.0, 3.0)),
])
def test_parser_rules(profile, mode, text, expected):
    p = make_profile(JudgeProfileConfig(profile=profile))
    assert p.parse(text, Mode(mode), 2 if mode == "pair" else 1) == expected


def test_judgelm_profile_is_judgelm_prompts():
    p = make_profile(JudgeProfileConfig())
    for mode in Mode:
        answers = list(ANSWERS) + (["43"] if mode is Mode.MULTI else [])
        assert p.render(QUESTION, answers, REFERENCE, mode).user == build_prompt(QUESTION, answers, REFERENCE, mode)


def test_unknown_profile_rubric_and_modes_are_refused_with_one_line():
    with pytest.raises(ValueError, match="not one of: judgelm, pandalm"):
        make_profile(JudgeProfileConfig(profile="gpt5"))
    with pytest.raises(ValueError, match="rubric name"):
        make_profile(JudgeProfileConfig(profile="prometheus2", rubric="kindness"))
    for name in PROFILES:
        if name != "judgelm":
            with pytest.raises(UnsupportedMode, match="no multi mode"):
                make_profile(JudgeProfileConfig(profile=name)).check_mode(Mode.MULTI)


def test_custom_rubric_and_instruction_reach_the_prompt_and_the_store_attrs():
    rubric = "[Is it short?]\nScore 1: long\nScore 2: a\nScore 3: b\nScore 4: c\nScore 5: short"
    cfg = JudgeProfileConfig(profile="prometheus2", rubric=rubric)
    assert rubric in make_profile(cfg).render("q", ["a", "b"], None, Mode.SINGLE).user
    assert "[Is it short?]\n\n###Feedback: " in make_profile(cfg).render("q", ["a", "b"], None, Mode.PAIR).user
    assert store_attrs(cfg) == {"judge_profile": "prometheus2", "judge_rubric": rubric}
    chat = JudgeProfileConfig(profile="chat", instruction="Judge fairly.")
    assert make_profile(chat).render("q", ["a", "b"], None, Mode.PAIR).user.startswith("Judge fairly.\n\n[Question]")


def test_chat_prompts_go_through_the_chat_template_without_a_second_bos(random_judge):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(random_judge)
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    prompt = make_profile(JudgeProfileConfig(profile="mtbench-gpt4")).render("q", ["a", "b"], None, Mode.PAIR)
    plain = make_profile(JudgeProfileConfig(profile="autoj")).render("q", ["a", "b"], None, Mode.PAIR)
    chat_ids, plain_ids = encode_prompts(tok, [prompt, plain])
    assert chat_ids.count(tok.bos_token_id) == 1 and chat_ids[0] == tok.bos_token_id
    assert tok.decode(chat_ids).endswith(prompt.user + "<|assistant|>")
    assert plain_ids[0] == tok.bos_token_id and tok.decode(plain_ids[1:]) == plain.user
