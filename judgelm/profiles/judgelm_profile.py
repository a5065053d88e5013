"""``judgelm``: JudgeLM's own prompt and score-line parser (``judgelm.profiles.prompts``,
``judgelm.data.verdicts``), the default.

JudgeLM publishes no template for judging a conversation (its paper lists "multi-turn chat" among its extended
capabilities; its repository's issue #26 asks for a template; its web demo's multi-turn chat continues a chat with
the judge after its verdict). A later turn of a conversation is therefore judged with JudgeLM's own prompt,
unchanged, whose ``[Question]`` field holds the conversation up to the judged turn (``conversation_question``),
and whose answer slots hold each assistant's reply to that turn: the judge scores the last replies, seeing what
each assistant said before. The first turn is judged exactly like a single-turn record.
"""

from __future__ import annotations

from collections.abc import Sequence

from judgelm.data.records import MAX_TURNS, Turn
from judgelm.data.verdicts import parse_prediction
from judgelm.profiles.base import Profile, Prompt, Scores
from judgelm.profiles.prompts import Mode, build_prompt


def conversation_question(question: str, history: Sequence[Turn]) -> str:
    """The ``[Question]`` field of a later turn: every earlier turn as ``### User:`` with the user's message, the
    reference reply where the unit shows references (``### Reference answer:``) and each assistant's own reply
    (``### Assistant k:``, numbered like the answer slots), then ``### User:`` with the judged turn's message.
    Blocks are separated by a blank line; texts are inserted raw, as JudgeLM inserts them."""
    blocks = []
    for t in history:
        blocks.append(f"### User:\n{t.question}")
        if t.reference is not None:
            blocks.append(f"### Reference answer:\n{t.reference}")
        blocks += [f"### Assistant {k}:\n{a}" for k, a in enumerate(t.answers, 1)]
    blocks.append(f"### User:\n{question}")
    return "\n\n".join(blocks)


class JudgeLM(Profile):
    name = "judgelm"
    modes = (Mode.PAIR, Mode.SINGLE, Mode.MULTI)
    verdict_first = True
    max_turns = MAX_TURNS

    def render(self, question: str, answers: Sequence[str], reference: str | None, mode: Mode) -> Prompt:
        return Prompt(build_prompt(question, list(answers), reference, mode))

    def render_turn(self, question: str, answers: Sequence[str], reference: str | None, mode: Mode,
                    history: Sequence[Turn]) -> Prompt:
        return self.render(conversation_question(question, history), answers, reference, mode)

    def parse(self, text: str, mode: Mode, n_scores: int) -> Scores | None:
        return parse_prediction(text, n_scores)
