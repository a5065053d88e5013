"""The ``arena-hard`` profile against Arena-Hard-Auto at 196f6b8: its prompts byte for byte, its label parser on the
authors' documented outputs, and the answers loader on the shipped files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from judgelm.data import arena_hard as ah
from judgelm.data.answers import load_answers
from judgelm.data.verdicts import win_array
from judgelm.profiles import JudgeProfileConfig, make_profile
from judgelm.profiles.arena_hard import (
    CREATIVE_WRITING_SYSTEM_PROMPT,
    LABEL_PATTERNS,
    SYSTEM_PROMPT,
    USER_TEMPLATE,
    find_label,
    parse_label,
)
from judgelm.profiles.prompts import Mode

DATA = Path(__file__).resolve().parents[1] / "data" / "evaluation" / "arena_hard"

# sha256 of the authors' strings, from `python -c "from utils.judge_utils import JUDGE_SETTINGS ..."` in a checkout
# of lmarena/arena-hard-auto at 196f6b826783b3da7310e361a805fa36f0be83f3: OG_ARENA_HARD_PROMPT (hard_prompt, coding,
# math, arena-hard-v0.1; also v0.1's config/judge_config.yaml system_prompt at 0489bf3) and creative_writing's.
OG_SHA256 = "03f68010febd7a6405102ef882b4dd5a9700c56b2e1ff286d3b38f5d3a929bbf"
CREATIVE_SHA256 = "171489efbca7f19fb520e1b3c23783c76af7c723e770fe897a55f391684aa358"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_system_prompts_are_the_authors():
    assert sha(SYSTEM_PROMPT) == OG_SHA256
    assert sha(CREATIVE_WRITING_SYSTEM_PROMPT) == CREATIVE_SHA256


@pytest.mark.parametrize("version", ["v0.1", "v2.0"])
def test_template_and_regexes_are_the_shipped_config(version):
    config = yaml.safe_load((DATA / "config" / f"arena-hard-{version}.yaml").read_text())
    assert config["prompt_template"] == USER_TEMPLATE
    assert [p.pattern for p in LABEL_PATTERNS] == config["regex_patterns"]


def test_render_is_system_plus_the_filled_template():
    p = make_profile(JudgeProfileConfig(profile="arena-hard")).render("Q?", ["first", "second"], None, Mode.PAIR)
    assert p.chat and p.system == SYSTEM_PROMPT
    assert p.user == ("<|User Prompt|>\nQ?\n\n<|The Start of Assistant A's Answer|>\nfirst\n<|The End of Assistant "
                      "A's Answer|>\n\n<|The Start of Assistant B's Answer|>\nsecond\n<|The End of Assistant B's "
                      "Answer|>")
    creative = make_profile(JudgeProfileConfig(profile="arena-hard-creative")).render("Q?", ["a", "b"], None, Mode.PAIR)
    assert creative.system == CREATIVE_WRITING_SYSTEM_PROMPT and creative.user == p.user.replace(
        "first", "a").replace("second", "b")


# Each text with the label the authors' get_score (gen_judgment.py at 196f6b8, patterns of the v2.0 config) returns
# for it, recorded by running their function on these texts. The first is the example output of the system prompt.
AUTHORS = [
    ('My final verdict is tie: [[A=B]]', "A=B"),
    ("Assistant B is better.\n\nMy final verdict is: [[B>>A]]", "B>>A"),
    ("my final verdict is [[a>b]]", "A>B"),
    ("Options: [[A>>B]], [[A>B]], [[A=B]], [[B>A]], [[B>>A]]. My final verdict is [[B>A]].", "B>A"),
    ("Verdict: [A>B]", "A>B"),
    ("[[A]] then [B>A]", "A"),
    ("no label at all", None),
    ("[[A<<B]]", "A<<B"),
    ("[[B=A]]", "B=A"),
    ("First [[A>B]] and later [B>>A]", "A>B"),
    ("[[A>B]]\n", "A>B"),
    ("[[]]", None),
    ("", None),
]


@pytest.mark.parametrize("text,label", AUTHORS)
def test_label_is_the_authors(text, label):
    assert find_label(text) == label


def test_labels_become_scores_with_strength_and_junk_is_a_failure():
    assert parse_label("[[A>>B]]") == (2.0, 0.0) and parse_label("[[B<<A]]") == (2.0, 0.0)
    assert parse_label("[[A>B]]") == (1.0, 0.0) and parse_label("[[B<A]]") == (1.0, 0.0)
    assert parse_label("[[A=B]]") == (0.0, 0.0) and parse_label("[[B=A]]") == (0.0, 0.0)
    assert parse_label("[[B>A]]") == (0.0, 1.0) and parse_label("[[B>>A]]") == (0.0, 2.0)
    assert parse_label("[[A<<B]]") == (0.0, 2.0)
    # A label outside show_result's table (their code raises KeyError there) and no label: parse failures.
    assert parse_label("[[A]] then [B>A]") is None and parse_label("no label") is None
    assert win_array(np.array([[2, 0], [1, 0], [0, 0], [0, 1], [0, 2]])).tolist() == [1, 1, 0, -1, -1]


def test_profile_has_only_the_pairwise_mode():
    from judgelm.profiles import UnsupportedMode

    with pytest.raises(UnsupportedMode):
        make_profile(JudgeProfileConfig(profile="arena-hard")).check_mode(Mode.SINGLE)


def test_answers_loader_reads_the_shipped_files():
    data = load_answers("arena_hard:" + str(DATA / "arena-hard-v0.1" / "model_answer" / "*.jsonl"))
    assert len(data.questions) == 500 and data.models == ["gpt-3.5-turbo-0125", "gpt-4-0314", "gpt-4-0613"]
    q = data.questions["328c149ed45a41c0b9d6f14659e63599"]
    assert q.text == "Use ABC notation to write a melody in the style of a folk tune."
    assert q.category == "arena-hard-v0.1"
    assert all(len(a) == 3 for a in data.answers.values())
    (answer,) = data.answers["0122ab60646b4961bc39e9c03bdf6bcc"]["gpt-4-0314"]  # one turn
    assert answer.startswith(
        "To implement a SCIM (System for Cross-domain Identity Management) server in PHP")


def test_versions_give_questions_and_baseline_answers():
    assert len(ah.questions("v0.1")) == 500 and len(ah.questions("v2.0")) == 750
    base = ah.baseline_answers("v2.0")
    assert base.models == ["o3-mini-2025-01-31"] and len(base.questions) == 750
    with pytest.raises(ValueError, match="v3"):
        ah.version("v3")


def test_a_bad_answer_file_names_its_line(tmp_path):
    bench = tmp_path / "bench"
    (bench / "model_answer").mkdir(parents=True)
    (bench / "question.jsonl").write_text('{"uid": "q1", "prompt": "hi", "category": "c"}\n')
    (bench / "model_answer" / "m.jsonl").write_text('{"uid": "q1", "model": "m", "messages": []}\n')
    with pytest.raises(ValueError, match=r"m.jsonl:1: field 'messages'"):
        load_answers(f"arena_hard:{bench}")
