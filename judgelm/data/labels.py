"""A data set's own label values mapped onto ours: 1 (answer 1 better), 0 (tie), -1 (answer 2 better).

Mappings are written in YAML (a generic mapping file's ``label_values``, ``make import``'s ``winner_values``) and
are matched against the data's values as text, so ``{0: 1, 1: -1, 2: 0}`` matches JSON ``0`` as well as ``"0"``.
YAML reads some unquoted keys as other types; what that makes ambiguous is refused with the key to quote:

- integer keys (``0``, ``2``) are accepted: their text is what the data's integers read as;
- ``true``/``false``/``yes``/``no`` (booleans) and ``1.0`` (floats) are refused: quote them (``"yes": 1``);
- ``{A:1,B:-1,tie:0}`` without spaces after the colons is YAML for the keys ``"A:1"``… with no values (how a
  ``key={...}`` command-line value arrives); such a key is split at its last colon, so that spelling works too.
  With numbers it cannot work (YAML 1.1 reads ``2:0`` as the base-60 number 120), so a key without a value that
  is not text is refused with the spaced spelling to use.

On a command line, write ``A:1,B:-1,tie:0`` (no braces, no spaces): the shell leaves it alone.
"""

from __future__ import annotations

from typing import Any

from judgelm.config import ConfigError
from judgelm.data.records import LABELS

LABEL_MEANING = "1 (answer 1 better), 0 (tie) or -1 (answer 2 better)"


def label_map(raw: dict[Any, Any] | str, where: str) -> dict[str, int]:
    """``raw`` (as YAML gave it) as ``{value as text: label}``; ``where`` names the setting in error messages.

    A string ``A:1,B:-1,tie:0`` is read as that mapping: on a command line it needs no quotes, where ``{...}``
    would be brace-expanded by the shell (``make import ARGS=...`` runs through bash) into three arguments.
    """
    if isinstance(raw, str):
        raw = _pairs(raw, where)
    out: dict[str, int] = {}
    for key, value in raw.items():
        if isinstance(key, str) and value is None and ":" in key:
            key, _, value = key.rpartition(":")
        if isinstance(key, (bool, float)) or key is None:
            raise ConfigError(f"{where}: key {key!r} is read by YAML as a {type(key).__name__}, not as text; "
                              f"quote it ('{key}': ...)")
        if value is None:  # YAML 1.1 reads 2:0 as the base-60 number 120: the written text cannot be recovered
            raise ConfigError(f"{where}: key {key!r} has no value; put a space after each colon, "
                              "e.g. {0: 1, 1: -1, 2: 0}")
        out[str(key)] = _label(value, f"{where}.{key}")
    return out


def _pairs(text: str, where: str) -> dict[str, str]:
    out = {}
    for item in filter(str.strip, text.strip().strip("{}").split(",")):
        key, colon, value = item.strip().rpartition(":")
        if not colon or not key:
            raise ConfigError(f"{where}: {item.strip()!r} is not value:label; write e.g. A:1,B:-1,tie:0")
        out[key] = value
    return out


def _label(value: Any, where: str) -> int:
    try:
        label = int(str(value).strip())
    except ValueError:
        label = None
    if isinstance(value, bool) or label not in LABELS:
        raise ConfigError(f"{where}: {value!r} is not a label; use {LABEL_MEANING}")
    return label
