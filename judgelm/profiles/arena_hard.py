"""``arena-hard``: Arena-Hard-Auto's pairwise judge (lmarena/arena-hard-auto at 196f6b8, Apache-2.0).

The system prompt is ``OG_ARENA_HARD_PROMPT`` of its ``utils/judge_utils.py`` (v0.1 and v2.0's hard prompts; the
same text as v0.1's ``config/judge_config.yaml``), ``arena-hard-creative`` the prompt of v2.0's creative-writing
category; the user turn is the ``prompt_template`` of ``config/arena-hard-v{0.1,2.0}.yaml`` (identical in both),
with the answer in slot 1 as Assistant A. All byte for byte (``tests/test_arena_hard_profile.py``).

The verdict is read as ``gen_judgment.get_score`` reads it: the judge's text upper-cased, the first of the two
label regexes that matches anything, its last match. The label is one of ``show_result.py``'s ten spellings of
the five verdicts (``A>>B``, ``A>B``, ``A=B``, ``B>A``, ``B>>A`` and the mirrored ``A<<B``...). A text with no
match, or a match that is no such label (``[[A]]``, on which the authors' code stops with a KeyError), is a parse
failure: counted by the merge and left out of the battles, never a tie.

Store scores keep the strength: a significant win stores 2 for the winner's slot, a slight win 1, a tie 0 and 0,
so the merge's win/tie/loss is the usual comparison and the Arena-Hard statistics (``judgelm.scoring.arena_hard``)
know strong from weak wins.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from judgelm.profiles.base import Profile, Prompt, Scores
from judgelm.profiles.prompts import Mode

SYSTEM_PROMPT = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI "
    "assistants to the user prompt displayed below. You will be given assistant A's answer and assistant "
    "B's answer. Your job is to evaluate which assistant's answer is better.\n"
    "\n"
    "Begin your evaluation by generating your own answer to the prompt. You must provide your answers "
    "before judging any answers.\n"
    "\n"
    "When evaluating the assistants' answers, compare both assistants' answers with your answer. You "
    "must identify and correct any mistakes or inaccurate information.\n"
    "\n"
    "Then consider if the assistant's answers are helpful, relevant, and concise. Helpful means the "
    "answer correctly responds to the prompt or follows the instructions. Note when user prompt has any "
    "ambiguity or more than one interpretation, it is more helpful and appropriate to ask for "
    "clarifications or more information from the user than providing an answer based on assumptions. "
    "Relevant means all parts of the response closely connect or are appropriate to what is being asked. "
    "Concise means the response is clear and not verbose or excessive.\n"
    "\n"
    "Then consider the creativity and novelty of the assistant's answers when needed. Finally, identify "
    "any missing important information in the assistants' answers that would be beneficial to include "
    "when responding to the user prompt.\n"
    "\n"
    "After providing your explanation, you must output only one of the following choices as your final "
    "verdict with a label:\n"
    "\n"
    "1. Assistant A is significantly better: [[A>>B]]\n"
    "2. Assistant A is slightly better: [[A>B]]\n"
    "3. Tie, relatively the same: [[A=B]]\n"
    "4. Assistant B is slightly better: [[B>A]]\n"
    "5. Assistant B is significantly better: [[B>>A]]\n"
    "\n"
    "Example output: \"My final verdict is tie: [[A=B]]\".")
# v2.0's creative-writing prompt is the same text without the judge's own answer (two deletions, nothing else).
CREATIVE_WRITING_SYSTEM_PROMPT = SYSTEM_PROMPT.replace(
    "Begin your evaluation by generating your own answer to the prompt. You must provide your answers before judging "
    "any answers.\n\n", "", 1).replace(" with your answer", "", 1)
USER_TEMPLATE = (
    "<|User Prompt|>\n{QUESTION}\n\n<|The Start of Assistant A's Answer|>\n{ANSWER_A}\n<|The End of Assistant A's "
    "Answer|>\n\n<|The Start of Assistant B's Answer|>\n{ANSWER_B}\n<|The End of Assistant B's Answer|>")
LABEL_PATTERNS = (re.compile(r"\[\[([AB<>=]+)\]\]"), re.compile(r"\[([AB<>=]+)\]"))

STRONG, WEAK = 2.0, 1.0
"""Store score of the winner's slot for a significant and a slight win (the loser's is 0)."""
LABEL_SCORES: dict[str, Scores] = {
    "A>>B": (STRONG, 0.0), "B<<A": (STRONG, 0.0), "A>B": (WEAK, 0.0), "B<A": (WEAK, 0.0),
    "A=B": (0.0, 0.0), "B=A": (0.0, 0.0),
    "B>A": (0.0, WEAK), "A<B": (0.0, WEAK), "B>>A": (0.0, STRONG), "A<<B": (0.0, STRONG),
}


def find_label(text: str) -> str | None:
    """The label Arena-Hard-Auto's ``get_score`` returns for ``text`` (None: no match)."""
    upper = text.upper()
    for pattern in LABEL_PATTERNS:
        matches = [m for m in pattern.findall(upper) if m != ""]
        if matches:
            return matches[-1].strip("\n")
    return None


def parse_label(text: str) -> Scores | None:
    return LABEL_SCORES.get(find_label(text) or "")


class ArenaHard(Profile):
    name = "arena-hard"
    modes = (Mode.PAIR,)
    system_prompt = SYSTEM_PROMPT

    def render(self, question: str, answers: Sequence[str], reference: str | None, mode: Mode) -> Prompt:
        user = USER_TEMPLATE.format(QUESTION=question, ANSWER_A=answers[0], ANSWER_B=answers[1])
        return Prompt(user, self.system_prompt, chat=True)

    def parse(self, text: str, mode: Mode, n_scores: int) -> Scores | None:
        return parse_label(text)


class ArenaHardCreative(ArenaHard):
    """v2.0's creative-writing prompts: the judge does not write its own answer first."""

    name = "arena-hard-creative"
    system_prompt = CREATIVE_WRITING_SYSTEM_PROMPT
