"""Suites: several benchmarks judged as one run, and the named suites in ``configs/suites/``.

A combined data spec joins parts with ``+``; each part is anything ``load_dataset`` accepts on its own (a benchmark,
``name:ARG``, a file) with an optional ``@N`` that keeps the first N records of each of its subsets, so a small
suite still covers every subset. Record ids become ``<part>/<id>`` (two benchmarks may both have an item ``0``), and
a record without a subset gets the part's name, so the merge can tell the benchmarks of a mixed store apart.

Benchmarks need different prompt modes (Prometheus is single-answer grading), and a run has one mode; so a suite
maps to one data spec per mode (``sources_by_mode``), which ``launch.benchmark`` judges as sibling runs.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from judgelm.data.benchmarks import BENCHMARKS, GENERIC_PREFIX, load_dataset
from judgelm.config import ConfigError, load_config, load_group
from judgelm.data.records import Loaded, Record

_LIMIT = re.compile(r"^(?P<part>.+)@(?P<n>\d+)$")


@dataclass(frozen=True)
class Part:
    spec: str  # what load_dataset gets for this part
    limit: int  # records per subset, 0 for all

    @property
    def name(self) -> str:
        """The benchmark name, or a file's stem."""
        head = self.spec.partition(":")[0]
        return head if head in BENCHMARKS else Path(self.spec.removeprefix(GENERIC_PREFIX)).stem


def parse_spec(spec: str) -> list[Part]:
    parts = []
    for item in spec.split("+"):
        m = _LIMIT.match(item.strip())
        parts.append(Part(m["part"], int(m["n"])) if m else Part(item.strip(), 0))
    if any(not p.spec for p in parts):
        raise ValueError(f"empty part in data spec '{spec}'")
    return parts


def is_combined(spec: str) -> bool:
    return "+" in spec or _LIMIT.match(spec) is not None


def load_combined(spec: str, skip_invalid: bool = False) -> Loaded:
    out = Loaded()
    parts = parse_spec(spec)
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise ValueError(f"data spec '{spec}' names a benchmark twice")
    for part in parts:
        loaded = load_dataset(part.spec, skip_invalid)
        records = first_per_subset(loaded.records, part.limit) if part.limit else loaded.records
        out.records += [dataclasses.replace(r, question_id=f"{part.name}/{r.question_id}", subset=r.subset or part.name)
                        for r in records]
        out.rejects += loaded.rejects
        out.ids_from_lines |= loaded.ids_from_lines
    return out


def first_per_subset(records: list[Record], n: int) -> list[Record]:
    counts: Counter[str] = Counter()
    out = []
    for r in records:
        if counts[r.subset] < n:
            counts[r.subset] += 1
            out.append(r)
    return out


def mode_of(part: Part) -> str:
    head = part.spec.partition(":")[0]
    return BENCHMARKS[head].mode if head in BENCHMARKS else "pair"


def check_mode(spec: str, mode: str) -> None:
    """Refuse a run whose prompt mode is not the one a named benchmark in ``spec`` is scored in."""
    for part in parse_spec(spec):
        if mode_of(part) != mode and part.spec.partition(":")[0] in BENCHMARKS:
            raise ValueError(f"benchmark '{part.name}' is judged with prompt.mode={mode_of(part)}, not {mode}")


def sources_by_mode(parts: list[str], limit: int = 0) -> dict[str, str]:
    """One combined data spec per prompt mode, e.g. ``{"pair": "pandalm@5+llmbar@5", "single": "prometheus@5"}``."""
    out: dict[str, list[str]] = {}
    for item in parts:
        part = parse_spec(item)[0]
        n = part.limit or limit
        out.setdefault(mode_of(part), []).append(f"{part.spec}@{n}" if n else part.spec)
    return {mode: "+".join(items) for mode, items in out.items()}


@dataclass
class SuiteConfig:
    """A named suite (``configs/suites/<name>.yaml``)."""

    base: str = ""
    """Another suite whose benchmarks this one judges (so ``quick`` is ``default`` with a limit, not a copy)."""
    benchmarks: list[str] = field(default_factory=list)
    """Benchmark names, ``name:ARG`` or data files; ``@N`` keeps N records per subset of that one. Empty with a
    ``base``: the base suite's."""
    limit: int = 0
    """Records per subset of every benchmark (0: all), for quick suites."""
    description: str = ""
    """One line shown in listings."""


def load_suite(name: str, seen: tuple[str, ...] = ()) -> SuiteConfig:
    if name in seen:
        raise ConfigError(f"suite '{name}' is its own base ({' -> '.join(seen + (name,))})")
    try:
        suite = load_config(SuiteConfig, load_group("suites", name))
    except ConfigError as e:
        raise ConfigError(f"suite '{name}': {e}") from None
    if suite.base and not suite.benchmarks:
        suite.benchmarks = load_suite(suite.base, seen + (name,)).benchmarks
    return suite
