"""``judgelm``: JudgeLM's own prompt and score-line parser (``judgelm.profiles.prompts``,
``judgelm.data.verdicts``), the default."""

from __future__ import annotations

from collections.abc import Sequence

from judgelm.data.verdicts import parse_prediction
from judgelm.profiles.base import Profile, Prompt, Scores
from judgelm.profiles.prompts import Mode, build_prompt


class JudgeLM(Profile):
    name = "judgelm"
    modes = (Mode.PAIR, Mode.SINGLE, Mode.MULTI)
    verdict_first = True

    def render(self, question: str, answers: Sequence[str], reference: str | None, mode: Mode) -> Prompt:
        return Prompt(build_prompt(question, list(answers), reference, mode))

    def parse(self, text: str, mode: Mode, n_scores: int) -> Scores | None:
        return parse_prediction(text, n_scores)
