"""Prompts must match JudgeLM's byte for byte: released weights were trained on exactly these strings."""

from pathlib import Path

import pytest

from judgelm.profiles.prompts import INSTRUCTION, Mode, build_prompt, multi_instruction

GOLDEN = Path(__file__).parent / "golden" / "prompts"
QUESTION = "\nWhat is {x}?\n"  # JudgeLM inserts text raw: newlines kept, braces not interpreted
ANSWERS = ["Forty-two.", "{answer_2} 41", "43", ""]
REFERENCE = "It is 42."


@pytest.mark.parametrize("name, mode, n, reference", [
    ("pair", Mode.PAIR, 2, None),
    ("pair_w_reference", Mode.PAIR, 2, REFERENCE),
    ("single", Mode.SINGLE, 2, None),
    ("single_w_reference", Mode.SINGLE, 2, REFERENCE),
    ("multi4", Mode.MULTI, 4, None),
    ("multi4_w_reference", Mode.MULTI, 4, REFERENCE),
])
def test_prompt_matches_golden_file(name, mode, n, reference):
    expected = (GOLDEN / f"{name}.txt").read_bytes().decode("utf-8")
    assert build_prompt(QUESTION, ANSWERS[:n], reference, mode) == expected


def test_response_marker_has_no_trailing_space():
    p = build_prompt("q", ["a", "b"])
    assert p.endswith("\n\n### Response:")
    assert build_prompt("q", ["a", "b"], mode=Mode.SINGLE).endswith("### Response:10")


def test_multi_instruction_for_two_is_the_pairwise_one_and_limits_are_enforced():
    assert multi_instruction(2) == INSTRUCTION
    assert "for Assistant 1, 2, 3, 4 and 5, respectively" in multi_instruction(5)
    assert "nineteen AI assistants" in multi_instruction(19)
    with pytest.raises(ValueError):
        multi_instruction(20)
    with pytest.raises(ValueError):
        build_prompt("q", ["a", "b", "c"], mode=Mode.PAIR)
