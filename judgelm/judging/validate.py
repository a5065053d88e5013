"""What a run is asked to do, checked against its data before anything is created or submitted.

A setting that cannot mean anything (``data.limit=-1``, which would quietly judge all but the last record) or that
would quietly lose information (``prompt.mode=multi`` on labelled pairs, whose labels multi-answer grading cannot
score) is refused with the key to change. What is accepted but worth knowing (empty answers, skipped records, ids
made from line numbers) is returned by ``data_notes`` for the run summary and its metrics.
"""

from __future__ import annotations

from judgelm.config import ConfigError
from judgelm.data.records import Loaded
from judgelm.judging.config import JudgeConfig
from judgelm.judging.units import ORDER_POLICIES, REFERENCE_POLICIES
from judgelm.profiles.prompts import Mode


def check_run_inputs(cfg: JudgeConfig, loaded: Loaded) -> None:
    """Refuse, with one line naming the key, a run whose settings are meaningless for ``loaded``'s records.

    Includes ``cfg.engine.validate()``, so this is the one check to call at run creation.
    """
    _check_numbers(cfg)
    _check_choice("prompt.mode", cfg.prompt.mode, [m.value for m in Mode])
    _check_choice("prompt.reference", cfg.prompt.reference, REFERENCE_POLICIES)
    _check_choice("prompt.orders", cfg.prompt.orders, ORDER_POLICIES)
    cfg.engine.validate()
    cfg.leaderboard.validate()
    records = loaded.records[: cfg.data.limit] if cfg.data.limit else loaded.records
    if cfg.prompt.mode == Mode.MULTI.value:
        labelled = sum(len(r.answers) == 2 and r.gt_label() is not None for r in records)
        if labelled:
            raise ConfigError(f"prompt.mode=multi: {labelled} records are labelled pairs, and multi-answer grading "
                              "cannot score their labels; use prompt.mode=pair")
    if cfg.prompt.reference == "with" and records and all(r.reference is None for r in records):
        raise ConfigError("prompt.reference=with: no record has a reference answer; use prompt.reference=without")


def _check_numbers(cfg: JudgeConfig) -> None:
    if cfg.data.limit < 0:
        raise ConfigError(f"data.limit={cfg.data.limit}: give how many records to judge (>= 1), or 0 for all")
    if cfg.shards < 1:
        raise ConfigError(f"shards={cfg.shards}: a run needs at least 1 shard")
    if cfg.store.chunk_units < 1:
        raise ConfigError(f"store.chunk_units={cfg.store.chunk_units}: a chunk holds at least 1 unit")
    if cfg.prompt.turns < 0:
        raise ConfigError(f"prompt.turns={cfg.prompt.turns}: give how many turns of a conversation to judge (>= 1), "
                          "or 0 for all")
    if cfg.engine.max_prompt_tokens < 0:
        raise ConfigError(f"engine.max_prompt_tokens={cfg.engine.max_prompt_tokens}: give a token count, "
                          "or 0 for the model's context length")


def _check_choice(key: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value}: choose one of {', '.join(choices)}")


DATA_NOTES = ("rejected_records", "empty_answers", "ids_from_lines")


def data_notes(loaded: Loaded) -> dict[str, int | bool]:
    """What the data held that was accepted or skipped, for the run summary, ``metrics.json`` and ``make status``:
    ``rejected_records`` (skipped with ``data.skip_invalid=true``, listed in ``rejects.jsonl``), ``empty_answers``
    (judged as given) and ``ids_from_lines`` (the data has no id field)."""
    return {"rejected_records": len(loaded.rejects), "empty_answers": loaded.empty_answers,
            "ids_from_lines": loaded.ids_from_lines}
