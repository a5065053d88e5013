"""``chat``: any instruct model as a judge, through its own chat template, with a configurable instruction.

The instruction (``judge.instruction``; empty takes the defaults below) asks for an explanation and a final line
naming the verdict; the parser reads the last non-empty line only, so the explanation may say anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from judgelm.profiles.base import FIRST, SECOND, TIE, Profile, Prompt, Scores
from judgelm.profiles.prompts import Mode

PAIR_INSTRUCTION = (
    "Compare the two responses to the user's question below for helpfulness, relevance, accuracy and level of "
    "detail, ignoring their order and length. Explain your judgement briefly, then end with one final line that is "
    "exactly \"Verdict: A\", \"Verdict: B\" or \"Verdict: tie\".")
SINGLE_INSTRUCTION = (
    "Rate the response to the user's question below for helpfulness, relevance, accuracy and level of detail. "
    "Explain your rating briefly, then end with one final line that is exactly \"Score: N\", where N is an integer "
    "from 1 to 10.")
_QUESTION = "[Question]\n{question}\n\n"
_REFERENCE = "[Reference Answer]\n{reference}\n\n"
_PAIR = "[Response A]\n{a}\n\n[Response B]\n{b}"
_SINGLE = "[Response]\n{a}"
_VERDICT = re.compile(r"^\W*verdict\W*\s*(A|B|tie)\W*$", re.IGNORECASE)
_SCORE = re.compile(r"^\W*score\W*\s*(\d+(?:\.\d+)?)\W*$", re.IGNORECASE)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().split("\n") if line.strip()]
    return lines[-1].strip() if lines else ""


class Chat(Profile):
    name = "chat"

    def __init__(self, instruction: str = ""):
        self.instruction = instruction

    def render(self, question: str, answers: Sequence[str], reference: str | None, mode: Mode) -> Prompt:
        pair = Mode(mode) is Mode.PAIR
        head = self.instruction or (PAIR_INSTRUCTION if pair else SINGLE_INSTRUCTION)
        body = _QUESTION.format(question=question)
        if reference is not None:
            body += _REFERENCE.format(reference=reference)
        body += _PAIR.format(a=answers[0], b=answers[1]) if pair else _SINGLE.format(a=answers[1])
        return Prompt(head + "\n\n" + body, chat=True)

    def parse(self, text: str, mode: Mode, n_scores: int) -> Scores | None:
        line = last_line(text)
        if Mode(mode) is Mode.PAIR:
            m = _VERDICT.match(line)
            return {"a": FIRST, "b": SECOND, "tie": TIE}[m.group(1).lower()] if m else None
        m = _SCORE.match(line)
        return (float(m.group(1)),) if m else None
