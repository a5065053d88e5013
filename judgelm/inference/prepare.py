"""From a chunk of units to token ids: render each unit's prompt, tokenize once, and apply the length rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from judgelm.profiles import Profile, Prompt
from judgelm.profiles.encode import encode_prompts
from judgelm.profiles.judgelm_profile import JudgeLM
from judgelm.prompts import Mode

JUDGELM = JudgeLM()  # the default profile: JudgeLM's own prompt


@dataclass
class Prepared:
    """Token ids per unit of a chunk, in unit order. A rejected unit has no ids."""

    unit: np.ndarray
    ids: list[list[int]]
    truncated: np.ndarray  # bool: answers/reference were cut to fit
    rejected: np.ndarray  # bool: could not fit even after cutting, or the rule is ``reject``
    prompts: list[Prompt | None]  # the rendered prompt of each unit (None: rejected), for engines that take text


def unit_texts(inputs: dict, i: int, mode: Mode) -> tuple[str, list[str], str | None]:
    """Question, answers in the slot order the judge sees, and reference (or None) for unit ``i`` of a chunk."""
    r = int(inputs["record"][i]) - inputs["record_offset"]
    answers = list(inputs["answers"][r][: inputs["n_answers"][r]])
    if inputs["order"][i] == 1:
        answers[0], answers[1] = answers[1], answers[0]
    reference = inputs["reference"][r] if inputs["with_reference"][i] else None
    return inputs["question"][r], answers, reference


def _cut(tokenizer, text: str, n_tokens: int) -> str:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[: max(0, len(ids) - n_tokens)])


def fit_prompt(tokenizer, question: str, answers: list[str], reference: str | None, mode: Mode,
               limit: int, max_rounds: int = 12, profile: Profile = JUDGELM) -> tuple[list[int], Prompt] | None:
    """Cut the longest of the answers/reference from its end until the prompt has at most ``limit`` tokens.

    Tokens do not add up exactly across a cut (merges at the new boundary), so this re-encodes the whole prompt
    after each cut and cuts a little extra. Returns the ids and the prompt, or ``None`` when even empty answers
    would not fit.
    """
    answers = list(answers)
    for _ in range(max_rounds):
        prompt = profile.render(question, answers, reference, mode)
        ids = encode_prompts(tokenizer, [prompt])[0]
        excess = len(ids) - limit
        if excess <= 0:
            return ids, prompt
        fields = answers + ([reference] if reference is not None else [])
        longest = max(range(len(fields)), key=lambda k: len(fields[k]))
        if not fields[longest]:
            return None
        cut = _cut(tokenizer, fields[longest], excess + 4)
        if longest < len(answers):
            answers[longest] = cut
        else:
            reference = cut
    return None


def prepare_chunk(inputs: dict, tokenizer, mode: Mode, limit: int, too_long: str,
                  profile: Profile = JUDGELM) -> Prepared:
    n = len(inputs["unit"])
    texts = [unit_texts(inputs, i, mode) for i in range(n)]
    prompts: list[Prompt | None] = [profile.render(q, a, ref, mode) for q, a, ref in texts]
    ids = encode_prompts(tokenizer, prompts)
    truncated = np.zeros(n, dtype=bool)
    rejected = np.zeros(n, dtype=bool)
    for i in range(n):
        if len(ids[i]) <= limit:
            continue
        fitted = fit_prompt(tokenizer, *texts[i], mode, limit, profile=profile) if too_long == "truncate" else None
        if fitted is None:
            ids[i], prompts[i], rejected[i] = [], None, True
        else:
            (ids[i], prompts[i]), truncated[i] = fitted, True
    return Prepared(np.asarray(inputs["unit"]), ids, truncated, rejected, prompts)
