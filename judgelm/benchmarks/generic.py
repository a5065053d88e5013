"""A user's own pairwise data, JSON list or JSONL, described by a small YAML file instead of code.

    # my_pairs.yaml; judge it with data.source=path/to/my_pairs.yaml
    path: my_pairs.jsonl          # relative to this YAML file
    name: mypairs                 # benchmark name in reports (default: the YAML file's stem)
    id: uid                       # optional id field (default: the line / list item number)
    question: [instruction, input]  # one field, or several joined with a newline (empty ones skipped)
    answer1: response_a
    answer2: response_b
    reference: gold               # optional
    label: winner                 # ground truth, one of: label + label_values ...
    label_values: {A: 1, B: -1, tie: 0}   # raw value (as text) -> 1 answer1 better, 0 tie, -1 answer2 better
    # scores: [score_a, score_b]  # ... or two numeric score fields (higher is better)
    # fixed_label: 1              # ... or one label for every record (chosen/rejected data with chosen as answer1)
    subset: domain                # optional field, reported as <name>/<value>
    category: topic               # optional field

Records are validated like every other source: a bad one names its file, line and the offending field.
Without any ground truth the pairs are still judged, and consistency and position bias still computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf

from judgelm.config import ConfigError
from judgelm.records import (LABELS, Loaded, Record, RecordError, Source, iter_json_objects, load_objects, optional_text,
                             require_id, require_text)


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
    label_values: dict[str, int] = field(default_factory=dict)
    scores: list[str] = field(default_factory=list)
    fixed_label: int | None = None
    subset: str = ""
    category: str = ""

    def validate(self, where: Path) -> None:
        truths = [bool(self.label), bool(self.scores), self.fixed_label is not None]
        if sum(truths) > 1:
            raise ConfigError(f"{where}: give at most one of label, scores, fixed_label")
        if self.label and not self.label_values:
            raise ConfigError(f"{where}: label needs label_values (raw value -> 1, 0 or -1)")
        bad = {k: v for k, v in self.label_values.items() if v not in LABELS}
        if bad or (self.fixed_label is not None and self.fixed_label not in LABELS):
            raise ConfigError(f"{where}: labels must be 1 (answer1 better), 0 (tie) or -1 (answer2 better)")
        if self.scores and len(self.scores) != 2:
            raise ConfigError(f"{where}: scores names two fields, got {list(self.scores)}")


def load_generic_config(path: str | Path) -> GenericConfig:
    """Read a data description; unknown keys, wrong types and missing required keys fail with the key's name."""
    raw = OmegaConf.load(path)
    if isinstance(raw.get("question"), str):  # one field is the common case; accept it without list brackets
        raw.question = [raw.question]
    try:
        cfg: GenericConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(GenericConfig), raw))  # type: ignore
    except Exception as e:  # omegaconf names the key; keep that line, not the traceback
        raise ConfigError(f"{path}: {str(e).splitlines()[0]}") from None
    cfg.validate(Path(path))
    return cfg


def make_converter(cfg: GenericConfig, name: str):
    def convert(obj: Any, src: Source) -> Record:
        if not isinstance(obj, dict):
            raise RecordError(src, None, f"expected a JSON object, got {type(obj).__name__}")
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
        return Record(question_id=qid, question=question,
                      answers=(require_text(obj, cfg.answer1, src), require_text(obj, cfg.answer2, src)),
                      reference=require_text(obj, cfg.reference, src) if cfg.reference else None,
                      label=label, gt_scores=scores, subset=f"{name}/{subset}" if subset else name,
                      category=(optional_text(obj, cfg.category, src) or "") if cfg.category else "")
    return convert


def _number(obj: dict, key: str, src: Source) -> float:
    value = obj.get(key)
    if value is None:
        raise RecordError(src, key, "missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(src, key, f"expected a number, got {type(value).__name__}")
    return float(value)


def load_generic(config_path: str | Path, skip_invalid: bool = False) -> Loaded:
    config_path = Path(config_path)
    cfg = load_generic_config(config_path)
    data = (config_path.parent / cfg.path).resolve()
    if not data.is_file():
        raise FileNotFoundError(f"{config_path}: data file {data} not found")
    return load_objects(iter_json_objects(data), make_converter(cfg, cfg.name or config_path.stem), skip_invalid)
