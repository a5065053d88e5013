"""``pandalm``: PandaLM-7B's prompt and parser (github.com/WeOpenML/PandaLM, ``pandalm/utils/pandalm_inference.py``
at 3871806, Apache-2.0). Pairwise only: the judge answers ``1``, ``2`` or ``Tie`` on its first line, then
``### Reason:`` and ``### Reference:``.

PandaLM has no single-answer prompt. Single-answer units are judged as a pair against the gold answer (slot 1),
and the stored score is how the tested answer fared: 0 (gold better), 0.5 (tie) or 1 (tested better).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from judgelm.profiles.base import FIRST, SECOND, TIE, Profile, Prompt, Scores
from judgelm.profiles.prompts import Mode

# The prompt text, verbatim from build_pandalm_prompt (records carry no separate "input", so the no-input form).
PROMPT = ("Below are two responses for a given task. The task is defined by the Instruction. Evaluate the responses "
          "and generate a reference answer for the task.\n\n### Instruction:\n{instruction}\n\n{rsp}\n\n"
          "### Evaluation:\n")
RESPONSES = "### Response 1:\n{resp1}\n\n### Response 2:\n{resp2}"
# PandaLM deletes these special-token strings from both responses before inserting them.
SPECIAL_TOKENS = re.compile("|".join(re.escape(t) for t in (
    "<unk>", "<pad>", "<s>", "</s>", "[PAD]", "<|endoftext|>", "[UNK]", "[CLS]", "[MASK]", "<|startofpiece|>",
    "<|endofpiece|>", "[gMASK]", "[sMASK]")))
_SINGLE_SCORE = {FIRST: 0.0, TIE: 0.5, SECOND: 1.0}


def clean(response: str) -> str:
    return SPECIAL_TOKENS.sub("", response.strip()).strip()


class PandaLM(Profile):
    name = "pandalm"
    verdict_first = True
    single_scale = (0.0, 1.0)

    def render(self, question: str, answers: Sequence[str], reference: str | None, mode: Mode) -> Prompt:
        rsp = RESPONSES.format(resp1=clean(answers[0]), resp2=clean(answers[1]))
        return Prompt(PROMPT.format(instruction=question, rsp=rsp))

    def parse(self, text: str, mode: Mode, n_scores: int) -> Scores | None:
        first = text.strip().split("\n")[0]
        verdict = {"1": FIRST, "2": SECOND}.get(first) or (TIE if first.lower() == "tie" else None)
        if verdict is None or Mode(mode) is Mode.PAIR:
            return verdict
        return (_SINGLE_SCORE[verdict],)
