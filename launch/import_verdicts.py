"""Import another judge's verdicts as a run, merge it, print its metrics (``judgelm.external`` for the formats).

    python -m launch.import_verdicts format=pandalm data=pandalm \\
        verdicts=data/benchmarks/pandalm/gpt-3.5-turbo-testset-v1.json judge=gpt-3.5-turbo run=gpt35-pandalm
    python -m launch.import_verdicts format=judgelm data=judgelm_val:/data/JudgeLM \\
        verdicts=answers.jsonl swapped=answers_reversed.jsonl judge=JudgeLM-7B run=judgelm7b-val
    python -m launch.import_verdicts format=generic data=my_pairs.yaml verdicts=v.jsonl \\
        generic.id=uid generic.winner=choice 'generic.winner_values={A:1,B:-1,tie:0}' run=mine
    python -m launch.import_verdicts format=alpaca_eval 'verdicts=data/evaluation/alpaca_eval/*/annotations.json' \\
        judge=gpt4_turbo run=alpaca-eval-gpt4-turbo

The run directory (``<runs_dir>/<run>/``) gets ``verdicts.zarr``, ``metrics.json`` and ``metrics.md`` like a judged
run, so ``make report`` and run comparisons treat it the same way.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING

from judgelm.benchmarks import load_dataset
from judgelm.config import load_config
from judgelm.evaluation.alpaca_eval import import_annotations
from judgelm.evaluation.answers import expand_paths
from judgelm.evaluation.results import LEADERBOARD_MD
from judgelm.external import FORMATS, GenericFields, import_verdicts, read_verdicts
from judgelm.merge import format_table, merge_run
from judgelm.rundir import RunDir


@dataclass
class GenericFieldsConfig:
    id: str = "id"
    """The field holding the record id."""
    winner: str = ""
    """The field holding the verdict (mapped by ``winner_values``)..."""
    winner_values: dict[str, int] = field(default_factory=dict)
    """...raw value as text -> 1 (answer 1 better), 0 (tie), -1 (answer 2 better)."""
    scores: list[str] = field(default_factory=list)
    """...or the two fields holding the scores of answer 1 and answer 2."""


@dataclass
class ImportConfig:
    format: str = MISSING
    """``judgelm`` (answer files with pred_text), ``pandalm`` (PandaLM result files) or ``generic``."""
    data: str = ""
    """The data the verdicts judged (any ``data.source`` spec: a benchmark name, ``name:ARG`` or a file); none for
    ``alpaca_eval``, whose files hold the answers."""
    verdicts: str = MISSING
    """The verdict file for the answers in their original order (``alpaca_eval``: files and globs, comma-separated)."""
    swapped: str = ""
    """Optional verdict file for the same pairs with the answers swapped (gives consistency and position bias)."""
    with_reference: bool = False
    """The judge was shown the reference answer (scored against the with-reference ground truth)."""
    judge: str = ""
    """The judge's name, shown where a judged run shows its model path (default: the verdict file's stem)."""
    run: str = MISSING
    runs_dir: str = "runs"
    generic: GenericFieldsConfig = field(default_factory=GenericFieldsConfig)


def import_pairs(cfg: ImportConfig, rd: RunDir) -> None:
    if not cfg.data:
        raise SystemExit(f"format={cfg.format} needs data=... (the records the verdicts judged)")
    fields = GenericFields(cfg.generic.id, cfg.generic.winner, dict(cfg.generic.winner_values),
                           tuple(cfg.generic.scores))
    original = read_verdicts(cfg.verdicts, cfg.format, fields)
    swapped = read_verdicts(cfg.swapped, cfg.format, fields) if cfg.swapped else None
    loaded = load_dataset(cfg.data)
    rd.root.mkdir(parents=True)
    result = import_verdicts(rd.store, loaded, original, swapped, cfg.with_reference, attrs={
        "run": cfg.run, "model": cfg.judge or Path(cfg.verdicts).stem, "data": cfg.data,
        "imported_from": [str(Path(p).resolve()) for p in (cfg.verdicts, cfg.swapped) if p],
        "verdict_format": cfg.format})
    print(f"imported {result.records} records ({result.records_without_verdict} records of {cfg.data} had no verdict)")


def import_alpaca_eval(cfg: ImportConfig, rd: RunDir) -> None:
    try:
        paths = expand_paths(cfg.verdicts)
        store = import_annotations(rd.store, paths, attrs={
            "run": cfg.run, "model": cfg.judge or "alpaca_eval annotator", "data": cfg.verdicts,
            "imported_from": [str(p.resolve()) for p in paths], "verdict_format": cfg.format})
    except (ValueError, FileNotFoundError) as e:  # RecordError is a ValueError: file, line and field
        raise SystemExit(f"error: {e}") from None
    print(f"imported {store.n_records} annotations from {len(paths)} file(s)")


def main(argv: list[str] | None = None) -> int:
    cfg = load_config(ImportConfig, None, argv if argv is not None else sys.argv[1:])
    if cfg.format not in FORMATS:
        raise SystemExit(f"format must be one of {', '.join(FORMATS)}, got {cfg.format!r}")
    rd = RunDir(Path(cfg.runs_dir).resolve() / cfg.run)
    if rd.root.exists():
        raise SystemExit(f"{rd.root} already exists; choose another run")
    if cfg.format == "alpaca_eval":
        import_alpaca_eval(cfg, rd)
    else:
        import_pairs(cfg, rd)
    print(format_table(merge_run(rd.root)), end="")
    if (rd.root / LEADERBOARD_MD).exists():
        print("\n" + (rd.root / LEADERBOARD_MD).read_text(), end="")
    print(f"run directory: {rd.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
