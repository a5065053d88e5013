"""``autoj``: Auto-J's pairwise-with-tie and single 1-10 protocols (github.com/GAIR-NLP/auto-j,
``codes/usage/constants_prompt.py`` and the extractors of ``codes/usage/example.py`` at 2ae17a3, Apache-2.0).

Auto-J wraps its prompt in the Llama-2 ``[INST]`` format itself (no system message), so the tokenizer's chat
template is not used. Its protocols show no reference answer: with-reference units get the same prompt.
Single-answer units grade the tested answer (slot 2).
"""

from __future__ import annotations

from collections.abc import Sequence

from judgelm.profiles.base import FIRST, SECOND, TIE, Profile, Prompt, Scores
from judgelm.profiles.prompts import Mode

WRAPPER = "[INST] {input} [/INST]"
SINGLE = (
    "Write critiques for a submitted response on a given user's query, and grade the response:\n  \n[BEGIN DATA]\n"
    "***\n[Query]: {prompt}\n***\n[Response]: {response}\n***\n[END DATA]\n\nWrite critiques for this response. "
    "After that, you should give a final rating for the response on a scale of 1 to 10 by strictly following this "
    "format: \"[[rating]]\", for example: \"Rating: [[5]]\".")
PAIRWISE_TIE = (
    "You are assessing two submitted responses on a given user's query and judging which response is better or they "
    "are tied. Here is the data:\n\n[BEGIN DATA]\n***\n[Query]: {prompt}\n***\n[Response 1]: {response}\n***\n"
    "[Response 2]: {response_another}\n***\n[END DATA]\n\nHere are the instructions to assess and compare the two "
    "responses:\n\n1. Pinpoint the key factors to distinguish these two responses.\n2. Conclude your comparison by "
    "providing a final decision on which response is better, or they are tied. Begin your final decision statement "
    "with \"So, the final decision is Response 1 / Response 2 / Tie\". Ensure that your decision aligns coherently "
    "with the comprehensive evaluation and comparison you've provided.")

_DECISION = "final decision is "
_RATING = "Rating: [["


def parse_pairwise(text: str) -> Scores | None:
    """Auto-J's rule: the text after the last "final decision is " starts with Response 1, Response 2 or Tie."""
    text = text.strip()
    pos = text.rfind(_DECISION)
    if pos < 0:
        return None
    rest = text[pos + len(_DECISION):].strip().lower()
    for start, verdict in (("response 1", FIRST), ("response 2", SECOND), ("tie", TIE)):
        if rest.startswith(start):
            return verdict
    return None


def parse_rating(text: str) -> float | None:
    """Auto-J's rule: the number between the last "Rating: [[" and the "]]" after it."""
    pos = text.rfind(_RATING)
    end = text.find("]]", pos)
    if pos < 0 or end < 0:
        return None
    try:
        return float(text[pos + len(_RATING):end].strip())
    except ValueError:
        return None


class AutoJ(Profile):
    name = "autoj"

    def render(self, question: str, answers: Sequence[str], reference: str | None, mode: Mode) -> Prompt:
        if Mode(mode) is Mode.PAIR:
            user = PAIRWISE_TIE.format(prompt=question, response=answers[0], response_another=answers[1])
        else:
            user = SINGLE.format(prompt=question, response=answers[1])
        return Prompt(WRAPPER.format(input=user))

    def parse(self, text: str, mode: Mode, n_scores: int) -> Scores | None:
        if Mode(mode) is Mode.PAIR:
            return parse_pairwise(text)
        rating = parse_rating(text)
        return None if rating is None else (rating,)
