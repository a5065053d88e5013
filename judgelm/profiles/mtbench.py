"""``mtbench-gpt4``: FastChat's MT-Bench judge prompts (``fastchat/llm_judge/data/judge_prompts.jsonl`` at 0e6d3e4,
Apache-2.0; the copy in ``shared/data/mt_bench/raw``) and its verdict extraction (``fastchat/llm_judge/common.py``).

Pairwise units use ``pair-v2`` (``pair-math-v1`` with a reference), single-answer units ``single-v1``
(``single-math-v1`` with a reference), each as a system + user chat. The second turn of a two-turn conversation
uses the ``-multi-turn`` form of the same template, filled as FastChat's ``run_judge_pair`` / ``run_judge_single``
fill it: both user turns, each assistant's two replies, and both reference replies when shown. The first turn is
judged with the single-turn template, as FastChat does. The templates are read from the JSON lines file shipped
beside this module, unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from judgelm.data.records import Turn
from judgelm.profiles.base import FIRST, SECOND, TIE, Profile, Prompt, Scores
from judgelm.profiles.prompts import Mode

PROMPTS_FILE = Path(__file__).parent / "data" / "mtbench_judge_prompts.jsonl"
# FastChat reads "[[N]]" first and falls back to "[N]"; anything else is an error (its -1).
_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")


@lru_cache(maxsize=1)
def judge_prompts() -> dict[str, dict]:
    return {p["name"]: p for p in map(json.loads, PROMPTS_FILE.read_text().splitlines())}


def parse_pair(text: str) -> Scores | None:
    for tag, verdict in (("[[A]]", FIRST), ("[[B]]", SECOND), ("[[C]]", TIE)):
        if tag in text:
            return verdict
    return None


def parse_rating(text: str) -> float | None:
    m = _RATING.search(text) or _RATING_BACKUP.search(text)
    return float(m.group(1)) if m else None


class MTBenchGPT4(Profile):
    name = "mtbench-gpt4"
    max_turns = 2  # FastChat's multi-turn templates show two turns

    def render(self, question: str, answers: Sequence[str], reference: str | None, mode: Mode) -> Prompt:
        ref = reference is not None
        if Mode(mode) is Mode.PAIR:
            spec = judge_prompts()["pair-math-v1" if ref else "pair-v2"]
            user = spec["prompt_template"].format(question=question, answer_a=answers[0], answer_b=answers[1],
                                                  ref_answer_1=reference)
        else:
            spec = judge_prompts()["single-math-v1" if ref else "single-v1"]
            user = spec["prompt_template"].format(question=question, answer=answers[1], ref_answer_1=reference)
        return Prompt(user, spec["system_prompt"], chat=True)

    def render_turn(self, question: str, answers: Sequence[str], reference: str | None, mode: Mode,
                    history: Sequence[Turn]) -> Prompt:
        (first,) = history
        ref = reference is not None
        texts = {"question_1": first.question, "question_2": question, "ref_answer_1": first.reference,
                 "ref_answer_2": reference}
        if Mode(mode) is Mode.PAIR:
            spec = judge_prompts()["pair-math-v1-multi-turn" if ref else "pair-v2-multi-turn"]
            texts.update(answer_a_1=first.answers[0], answer_b_1=first.answers[1], answer_a_2=answers[0],
                         answer_b_2=answers[1])
        else:
            spec = judge_prompts()["single-math-v1-multi-turn" if ref else "single-v1-multi-turn"]
            texts.update(answer_1=first.answers[1], answer_2=answers[1])
        return Prompt(spec["prompt_template"].format(**texts), spec["system_prompt"], chat=True)

    def parse(self, text: str, mode: Mode, n_scores: int) -> Scores | None:
        if Mode(mode) is Mode.PAIR:
            return parse_pair(text)
        rating = parse_rating(text)
        return None if rating is None else (rating,)
