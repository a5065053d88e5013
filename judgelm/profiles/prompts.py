"""JudgeLM prompt strings, byte for byte.

Released JudgeLM weights were trained on exactly these strings, so nothing here may be reformatted: no stripping
of the inserted texts, no chat wrapper, and ``### Response:`` with no trailing space. The strings are data
formats (reference document §2); the assembly is ``SYSTEM + "\\n" + template + appendix``. BOS is added by the
tokenizer, not here.
"""

from __future__ import annotations

from enum import Enum

SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
APPENDIX = "### Response:"
# Single-answer grading pre-fills Assistant 1's score: slot 1 holds the gold answer, which is taken as perfect.
APPENDIX_SINGLE = "### Response:10"

INSTRUCTION = (
    "We would like to request your feedback on the performance of two AI assistants in response to the user "
    "question displayed above.\nPlease rate the helpfulness, relevance, accuracy, level of details of their "
    "responses. Each assistant receives an overall score on a scale of 1 to 10, where a higher score indicates "
    "better overall performance.\nPlease first output a single line containing only two values indicating the "
    "scores for Assistant 1 and 2, respectively. The two scores are separated by a space. In the subsequent line, "
    "please provide a comprehensive explanation of your evaluation, avoiding any potential bias and ensuring that "
    "the order in which the responses were presented does not affect your judgment."
)

_QUESTION = "[Question]\n{question}\n\n"
_REFERENCE = "[Reference Answer]\n{reference}\n\n"
_ANSWER = "[The Start of Assistant {k}'s Answer]\n{answer}\n\n[The End of Assistant {k}'s Answer]\n\n"
_SYSTEM_BLOCK = "[System]\n{prompt}\n\n"

_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()


class Mode(str, Enum):
    """How many answers the judge sees and how its output is read."""

    PAIR = "pair"  # two answers, two scores (JudgeLM's main mode)
    SINGLE = "single"  # gold answer in slot 1 pre-scored 10, the tested answer in slot 2, one score read
    MULTI = "multi"  # N answers in one prompt, N scores (zero-shot for JudgeLM: it was trained on pairs)


def multi_instruction(n: int) -> str:
    """The pairwise instruction rewritten for ``n`` answers, as JudgeLM's ``copy(answer_num)`` does it."""
    if not 2 <= n < len(_NUMBER_WORDS):
        raise ValueError(f"N-answer grading supports 2..{len(_NUMBER_WORDS) - 1} answers, got {n}")
    if n == 2:
        return INSTRUCTION
    ids = ", ".join(str(k) for k in range(1, n)) + f" and {n}"
    return INSTRUCTION.replace("two", _NUMBER_WORDS[n]).replace("for Assistant 1 and 2", f"for Assistant {ids}")


def build_prompt(question: str, answers: list[str] | tuple[str, ...], reference: str | None = None,
                 mode: Mode = Mode.PAIR) -> str:
    """Render one judge prompt.

    ``answers`` are in slot order. For ``Mode.SINGLE`` pass ``(gold, tested)``. A ``reference`` of ``None``
    selects the template without the ``[Reference Answer]`` block; any string (even empty) selects the other.
    """
    mode = Mode(mode)
    n = len(answers)
    if mode is Mode.MULTI:
        instruction = multi_instruction(n)
    elif n != 2:
        raise ValueError(f"{mode.value} grading takes exactly 2 answers, got {n}")
    else:
        instruction = INSTRUCTION
    body = _QUESTION.format(question=question)
    if reference is not None:
        body += _REFERENCE.format(reference=reference)
    body += "".join(_ANSWER.format(k=k, answer=a) for k, a in enumerate(answers, 1))
    body += _SYSTEM_BLOCK.format(prompt=instruction)
    return SYSTEM + "\n" + body + (APPENDIX_SINGLE if mode is Mode.SINGLE else APPENDIX)
