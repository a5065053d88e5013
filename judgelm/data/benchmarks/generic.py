"""A user's own pairwise data, JSON list or JSONL, described by a small YAML mapping file instead of code.

Judge it with ``DATA=generic:path/to/mapping.yaml`` (a plain ``.yaml`` path works too). The format, with every key
(docs/your-data.md has worked examples; ``data/generic_examples/`` has four public shapes):

    path: my_pairs.jsonl          # the data, relative to this YAML file
    name: mypairs                 # benchmark name in reports (default: the YAML file's stem)
    id: uid                       # optional id field (default: the line number, or the item number of a JSON list)
    question: [instruction, input]  # one field, or several joined with a newline (empty ones skipped)
    answer1: response_a           # an empty answer is kept: a model that answered nothing is real data
    answer2: response_b
    reference: gold               # optional; a blank one counts as none
    label: winner                 # ground truth, one of: label + label_values ...
    label_values: {A: 1, B: -1, tie: 0}   # raw value (as text) -> 1 answer1 better, 0 tie, -1 answer2 better
    # scores: [score_a, score_b]  # ... or two numeric score fields (higher is better)
    # fixed_label: 1              # ... or one label for every record (chosen/rejected data with chosen as answer1)
    subset: domain                # optional field, reported as <name>/<value>
    category: topic               # optional field
    # extract:                    # optional: fields cut out of a larger text field by a regular expression;
    #   prompt_text: '###Question:\n(?P<q>.*?)\n###Answer:\n(?P<a>.*)'   # each named group becomes a field (q, a)

A JSON file may also hold an object of lists (one list per group, as OffsetBias' EvalBiasBench): the lists are read
one after the other. ``label_values`` keys follow ``judgelm.data.labels`` (integers accepted, booleans and floats must be
quoted). ``extract`` patterns match with ``.`` spanning lines; a record that does not match names the field.

Records are validated like every other source: a bad one names its file, line and the offending field.
Without any ground truth the pairs are still judged, and consistency and position bias still computed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import MISSING, OmegaConf

from judgelm.config import ConfigError
from judgelm.data.labels import LABEL_MEANING, label_map
from judgelm.data.records import (
    LABELS,
    Loaded,
    Record,
    RecordError,
    Source,
    iter_json_objects,
    load_objects,
    optional_text,
    require_id,
    require_text,
)


@dataclass
class GenericConfig:
    path: str = MISSING
    name: str = ""
    id: str = ""
    question: list[str] = MISSING
    answer1: str = MISSING
    answer2: str = MISSING
    reference: str = ""
    label: str = ""
    label_values: dict[Any, Any] = field(default_factory=dict)
    scores: list[str] = field(default_factory=list)
    fixed_label: int | None = None
    subset: str = ""
    category: str = ""
    extract: dict[str, str] = field(default_factory=dict)

    def validate(self, where: Path) -> None:
        truths = [bool(self.label), bool(self.scores), self.fixed_label is not None]
        if sum(truths) > 1:
            raise ConfigError(f"{where}: give at most one of label, scores, fixed_label")
        if self.label and not self.label_values:
            raise ConfigError(f"{where}: label needs label_values (raw value -> 1, 0 or -1)")
        self.label_values = label_map(self.label_values, f"{where}: label_values")
        if self.fixed_label is not None and self.fixed_label not in LABELS:
            raise ConfigError(f"{where}: fixed_label must be {LABEL_MEANING}")
        if self.scores and len(self.scores) != 2:
            raise ConfigError(f"{where}: scores names two fields, got {list(self.scores)}")
        for key, pattern in self.extract.items():
            try:
                groups = re.compile(pattern).groupindex
            except re.error as e:
                raise ConfigError(f"{where}: extract.{key}: not a regular expression ({e})") from None
            if not groups:
                raise ConfigError(f"{where}: extract.{key}: the pattern names no group, e.g. (?P<question>.*)")


def load_generic_config(path: str | Path) -> GenericConfig:
    """Read a data description; unknown keys, wrong types and missing required keys fail with the key's name."""
    raw = _read_yaml(Path(path))
    if isinstance(raw.get("question"), str):  # one field is the common case; accept it without list brackets
        raw.question = [raw.question]
    try:
        cfg: GenericConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(GenericConfig), raw))  # type: ignore
    except Exception as e:  # omegaconf names the key; keep that line, not the traceback
        raise ConfigError(f"{path}: {str(e).splitlines()[0]}") from None
    cfg.validate(Path(path))
    return cfg


def _read_yaml(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"generic mapping file not found: {path}")
    try:
        raw = OmegaConf.load(path)
    except yaml.YAMLError as e:  # one line: where the parser stopped, what it expected, and what it was reading
        mark, context = getattr(e, "problem_mark", None), getattr(e, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        started = f" ({e.context} at line {context.line + 1})" if context is not None and e.context else ""
        raise ConfigError(f"{where}: YAML syntax error: {getattr(e, 'problem', None) or e}{started}") from None
    if not OmegaConf.is_dict(raw):
        raise ConfigError(f"{path}: a generic mapping file holds keys (path, question, answer1, ...), not a list")
    return raw


def make_converter(cfg: GenericConfig, name: str):
    patterns = {key: re.compile(p, re.DOTALL) for key, p in cfg.extract.items()}

    def convert(obj: Any, src: Source) -> Record:
        if not isinstance(obj, dict):
            raise RecordError(src, None, f"expected a JSON object, got {type(obj).__name__}")
        obj = _extracted(obj, patterns, src)
        qid = require_id(obj, cfg.id, src) if cfg.id else (src.line if src.line is not None else src.item)
        parts = [require_text(obj, key, src, allow_empty=len(cfg.question) > 1) for key in cfg.question]
        question = "\n".join(p for p in parts if p.strip())
        if not question:
            raise RecordError(src, cfg.question[0], "empty")
        label, scores = None, None
        if cfg.label:
            raw = obj.get(cfg.label)
            if raw is None:
                raise RecordError(src, cfg.label, "missing")
            if str(raw) not in cfg.label_values:
                raise RecordError(src, cfg.label, f"value {raw!r} is not in label_values {sorted(cfg.label_values)}")
            label = cfg.label_values[str(raw)]
        elif cfg.scores:
            scores = tuple(_number(obj, key, src) for key in cfg.scores)
        elif cfg.fixed_label is not None:
            label = cfg.fixed_label
        subset = optional_text(obj, cfg.subset, src) if cfg.subset else None
        reference = optional_text(obj, cfg.reference, src) if cfg.reference else None
        return Record(question_id=qid, question=question,
                      answers=(require_text(obj, cfg.answer1, src, allow_empty=True),
                               require_text(obj, cfg.answer2, src, allow_empty=True)),
                      reference=reference if reference and reference.strip() else None,
                      label=label, gt_scores=scores, subset=f"{name}/{subset}" if subset else name,
                      category=(optional_text(obj, cfg.category, src) or "") if cfg.category else "")
    return convert


def _extracted(obj: dict, patterns: dict[str, re.Pattern], src: Source) -> dict:
    """``obj`` with the named groups of each ``extract`` pattern added as fields."""
    if not patterns:
        return obj
    out = dict(obj)
    for key, pattern in patterns.items():
        m = pattern.search(require_text(obj, key, src))
        if m is None:
            raise RecordError(src, key, f"does not match the extract pattern {pattern.pattern!r}")
        out.update(m.groupdict())
    return out


def _number(obj: dict, key: str, src: Source) -> float:
    value = obj.get(key)
    if value is None:
        raise RecordError(src, key, "missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(src, key, f"expected a number, got {type(value).__name__}")
    return float(value)


def load_generic(config_path: str | Path, skip_invalid: bool = False) -> Loaded:
    """Records of the data a mapping file describes; ``ids_from_lines`` says when the ids are line numbers."""
    config_path = Path(config_path)
    cfg = load_generic_config(config_path)
    data = (config_path.parent / cfg.path).resolve()
    if not data.exists():
        raise FileNotFoundError(f"{config_path}: data file {data} not found (path is relative to the mapping file)")
    loaded = load_objects(iter_json_objects(data), make_converter(cfg, cfg.name or config_path.stem), skip_invalid)
    loaded.ids_from_lines = not cfg.id
    return loaded
