"""Run settings checked against the data at run creation (judgelm/judging/validate.py)."""

import pytest

from judgelm.config import ConfigError
from judgelm.data.records import Loaded, Record, Reject, Source
from judgelm.judging.config import JudgeConfig
from judgelm.judging.validate import check_run_inputs, data_notes

PAIRS = Loaded([Record(1, "q", ("a", ""), label=1), Record(2, "q", ("a", "b"), label=0)])
UNLABELLED = Loaded([Record(1, "q", ("a", "b", "c")), Record(2, "q", ("a", "b", "c"))])


def configured(**changes) -> JudgeConfig:
    """A default config with ``section__field=value`` (or a top-level ``field=value``) changed."""
    cfg = JudgeConfig()
    for key, value in changes.items():
        section, _, name = key.rpartition("__")
        setattr(getattr(cfg, section) if section else cfg, name, value)
    return cfg


@pytest.mark.parametrize("changes, loaded, fragment", [
    ({"data__limit": -1}, PAIRS, "data.limit=-1: give how many records"),
    ({"shards": 0}, PAIRS, "shards=0"),
    ({"store__chunk_units": 0}, PAIRS, "store.chunk_units=0"),
    ({"prompt__mode": "pairs"}, PAIRS, "prompt.mode=pairs: choose one of pair, single, multi"),
    ({"prompt__orders": "swapped"}, PAIRS, "prompt.orders=swapped"),
    ({"prompt__mode": "multi"}, PAIRS, "prompt.mode=multi: 2 records are labelled pairs"),
    ({"prompt__reference": "with"}, PAIRS, "no record has a reference answer"),
    ({"engine__too_long": "cut"}, PAIRS, "engine.too_long must be truncate or reject"),
])
def test_meaningless_settings_are_refused_naming_the_key(changes, loaded, fragment):
    with pytest.raises(ValueError) as e:
        check_run_inputs(configured(**changes), loaded)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_sensible_settings_pass_and_notes_count_what_was_accepted():
    check_run_inputs(configured(data__limit=1), PAIRS)
    check_run_inputs(configured(prompt__mode="multi"), UNLABELLED)  # N answers without pairwise labels
    loaded = Loaded(PAIRS.records, [Reject(Source("d.jsonl", 3), "question_body", "empty", "{}")], ids_from_lines=True)
    assert data_notes(loaded) == {"rejected_records": 1, "empty_answers": 1, "ids_from_lines": True}
    assert issubclass(ConfigError, ValueError)  # the launcher's one `except ValueError` catches these
