"""From a chunk of units to token ids: render each unit's prompt, tokenize once, and apply the length rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from judgelm.data.records import Turn
from judgelm.inference.encode import encode_prompts
from judgelm.profiles import Profile, Prompt
from judgelm.profiles.judgelm_profile import JudgeLM
from judgelm.profiles.prompts import Mode

JUDGELM = JudgeLM()  # the default profile: JudgeLM's own prompt


@dataclass
class Prepared:
    """Token ids per unit of a chunk, in unit order. A rejected unit has no ids."""

    unit: np.ndarray
    ids: list[list[int]]
    truncated: np.ndarray  # bool: answers/reference were cut to fit
    rejected: np.ndarray  # bool: could not fit even after cutting, or the rule is ``reject``
    prompts: list[Prompt | None]  # the rendered prompt of each unit (None: rejected), for engines that take text


UnitText = tuple[str, list[str], str | None, tuple[Turn, ...]]


def unit_texts(inputs: dict, i: int, mode: Mode) -> UnitText:
    """Question, answers in the slot order the judge sees, reference (or None) and the earlier turns of the
    conversation (their answers in the same slot order, their references only where the unit shows them) for unit
    ``i`` of a chunk."""
    r = int(inputs["record"][i]) - inputs["record_offset"]
    n, swap, shown = inputs["n_answers"][r], inputs["order"][i] == 1, bool(inputs["with_reference"][i])
    turn = 0 if inputs.get("turn") is None else int(inputs["turn"][i])
    texts = [(inputs["question"][r], inputs["answers"][r], inputs["reference"][r])]
    texts += [(inputs["later_question"][r][t], inputs["later_answers"][r][t], inputs["later_reference"][r][t])
              for t in range(turn)]
    turns = []
    for question, answers, reference in texts:
        answers = list(answers[:n])
        if swap:
            answers[0], answers[1] = answers[1], answers[0]
        turns.append(Turn(question, tuple(answers), reference if shown else None))
    *history, current = turns
    return current.question, list(current.answers), current.reference, tuple(history)


Tokenize = Callable[[str], list[int]]


@lru_cache(maxsize=4)
def max_token_chars(tokenizer) -> int:
    """An upper bound on the characters one token stands for: the longest vocabulary entry (byte-level entries
    spell one character per byte, SentencePiece entries their text), doubled for normalizers that fold several
    characters into one. A text longer than ``limit × this`` has more than ``limit`` tokens."""
    return 2 * max(map(len, tokenizer.get_vocab()))


def _token_caps(lengths: list[int], budget: int) -> list[int]:
    """Tokens to keep per field: the longest fields are cut to one common length, the largest that fits ``budget``
    (shorter fields are kept whole), so a long answer loses its tail before a short one loses anything."""
    if sum(lengths) <= budget:
        return list(lengths)
    lo, hi = 0, max(lengths)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in lengths) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return [min(n, lo) for n in lengths]


def fit_prompt(tokenizer, question: str, answers: list[str], reference: str | None, mode: Mode,
               limit: int, max_rounds: int = 8, tokenize: Tokenize | None = None,
               profile: Profile = JUDGELM, history: tuple[Turn, ...] = ()) -> tuple[list[int], Prompt] | None:
    """Cut the longest of the answers/reference (those of the earlier turns too) from their ends until the prompt
    has at most ``limit`` tokens.

    Each field is tokenized once, and only as far as ``limit`` tokens can reach (``max_token_chars``), then cut by
    tokens, so the cost does not grow with the field (a 10 MB answer costs what a ``limit``-token one does). Tokens
    do not add up exactly across a cut (merges at the new boundaries), so the short, cut prompt is re-encoded and,
    while it is still too long, the budget shrinks by the excess. Returns the ids and the prompt, or ``None`` when
    even empty answers would not fit: the questions and template are never cut. ``tokenize`` (text -> ids without
    special tokens) lets a caller share the tokenization of a field between units.
    """
    tokenize = tokenize or (lambda text: tokenizer(text, add_special_tokens=False)["input_ids"])
    span = limit * max_token_chars(tokenizer)  # no more of a field than this can be kept, so no more is tokenized
    turns = (Turn(question, tuple(answers), reference), *history)
    if max(len(t.question) for t in turns) > span:
        return None
    fields = [f for t in turns for f in (*t.answers, *([t.reference] if t.reference is not None else []))]

    def render(texts: list[str]) -> Prompt:
        cut, k = [], 0
        for t in turns:  # the fields back into their turns, in the order they were listed
            n = len(t.answers) + (t.reference is not None)
            part, k = texts[k:k + n], k + n
            cut.append(Turn(t.question, tuple(part[:len(t.answers)]), part[-1] if t.reference is not None else None))
        current, *earlier = cut
        return profile.render_unit(question, list(current.answers), current.reference, mode, tuple(earlier))

    budget = limit - len(encode_prompts(tokenizer, [render([""] * len(fields))])[0])
    field_ids = [tokenize(f[:span]) for f in fields]
    for _ in range(max_rounds):
        if budget < 0:
            return None
        caps = _token_caps([len(x) for x in field_ids], budget)
        prompt = render([f if k == len(x) and len(f) <= span else tokenizer.decode(x[:k])
                         for f, x, k in zip(fields, field_ids, caps)])
        ids = encode_prompts(tokenizer, [prompt])[0]
        if len(ids) <= limit:
            return ids, prompt
        budget -= len(ids) - limit
    return None


def _texts(turn: Turn) -> tuple[str, ...]:
    return (turn.question, *turn.answers, turn.reference or "")


def prepare_chunk(inputs: dict, tokenizer, mode: Mode, limit: int, too_long: str,
                  profile: Profile = JUDGELM) -> Prepared:
    n = len(inputs["unit"])
    texts = [unit_texts(inputs, i, mode) for i in range(n)]
    # A prompt with a text longer than ``span`` characters is too long for sure: it skips the full encoding, which
    # for a 10 MB answer would cost more than judging the whole chunk.
    span = limit * max_token_chars(tokenizer)
    short = [i for i, (q, a, ref, h) in enumerate(texts)
             if max(len(t) for turn in (Turn(q, tuple(a), ref), *h) for t in _texts(turn)) <= span]
    ids: list[list[int]] = [[] for _ in range(n)]
    prompts: list[Prompt | None] = [None] * n
    for i in short:
        q, a, ref, h = texts[i]
        prompts[i] = profile.render_unit(q, a, ref, mode, h)
    for i, x in zip(short, encode_prompts(tokenizer, [prompts[i] for i in short])):
        ids[i] = x
    fits = np.zeros(n, dtype=bool)
    fits[short] = [len(ids[i]) <= limit for i in short]
    truncated = np.zeros(n, dtype=bool)
    rejected = np.zeros(n, dtype=bool)
    # Both answer orders of a record cut the same texts: tokenize each long field once per chunk.
    tokenize = lru_cache(maxsize=16)(lambda text: tokenizer(text, add_special_tokens=False)["input_ids"])
    for i in np.flatnonzero(~fits):
        q, a, ref, h = texts[i]
        fitted = (fit_prompt(tokenizer, q, a, ref, mode, limit, tokenize=tokenize, profile=profile, history=h)
                  if too_long == "truncate" else None)
        if fitted is None:
            ids[i], prompts[i], rejected[i] = [], None, True
        else:
            (ids[i], prompts[i]), truncated[i] = fitted, True
    return Prepared(np.asarray(inputs["unit"]), ids, truncated, rejected, prompts)
