"""The exact prompts of a run's units, to read before judging (``make prompts``).

The units come from ``plan_run``, so the data, the profile, the mode and every check are those of ``make judge``
with the same settings; they are listed record by record, in the data's order, instead of in the run's spread order
(``judgelm.judging.units.spread_permutation``). A profile that speaks through a chat template gets its system and user
parts and, as ``prompt``, the text the judge's tokenizer makes of them (``model.path``'s template); other profiles'
``prompt`` is their user text, given to the tokenizer as is. Over-long prompts are shown whole: a run cuts them at
judging time (``engine.too_long``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from judgelm.data.records import Turn
from judgelm.judging.config import JudgeConfig
from judgelm.judging.run import PlannedRun, plan_run
from judgelm.profiles import make_profile
from judgelm.profiles.prompts import Mode


def unit_prompts(cfg: JudgeConfig) -> Iterator[dict]:
    """One dict per unit: ``question_id``, ``turn`` (1: the first; a later turn's prompt shows the turns before
    it), ``order`` (1: answers 1 and 2 swapped), ``reference`` (shown or not), ``system``, ``user``, ``chat``
    (whether the judge's chat template wraps them) and ``prompt``. Everything is checked here, before the first
    row: a mistake never leaves half a listing."""
    return _rows(plan_run(cfg))


def _rows(planned: PlannedRun) -> Iterator[dict]:
    cfg, records, plan = planned.cfg, planned.loaded.records, planned.plan
    mode, profile = Mode(cfg.prompt.mode), make_profile(cfg.judge)
    tokenizer = None
    file_index = planned.file_index[plan.record]  # the run keeps its records spread
    for u in np.argsort(file_index, kind="stable"):
        r, order, with_reference = records[plan.record[u]], int(plan.order[u]), bool(plan.with_reference[u])
        *history, current = (seen_turn(t, order, with_reference) for t in r.turns()[: int(plan.turn[u]) + 1])
        prompt = profile.render_unit(current.question, current.answers, current.reference, mode, tuple(history))
        text = prompt.user
        if prompt.chat:
            from judgelm.inference.encode import chat_text
            from judgelm.inference.models import load_tokenizer

            tokenizer = tokenizer or load_tokenizer(cfg.model.path)
            text = chat_text(tokenizer, prompt)
        yield {"question_id": r.question_id, "turn": int(plan.turn[u]) + 1, "order": order,
               "reference": with_reference, "system": prompt.system, "user": prompt.user, "chat": prompt.chat,
               "prompt": text}


def seen_turn(turn: Turn, order: int, with_reference: bool) -> Turn:
    """A turn as the unit shows it: answers 1 and 2 swapped in the swapped order, the reference only where shown."""
    answers = list(turn.answers)
    if order:
        answers[0], answers[1] = answers[1], answers[0]
    return Turn(turn.question, tuple(answers), turn.reference if with_reference else None)
