"""Import another judge's verdicts as a run, merge it, print its metrics (``judgelm.judging.external`` for the formats).

    python -m launch.import_verdicts format=pandalm data=pandalm \\
        verdicts=data/benchmarks/pandalm/gpt-3.5-turbo-testset-v1.json judge=gpt-3.5-turbo run=gpt35-pandalm
    python -m launch.import_verdicts format=judgelm data=judgelm_val:/data/JudgeLM \\
        verdicts=answers.jsonl swapped=answers_reversed.jsonl judge=JudgeLM-7B run=judgelm7b-val
    python -m launch.import_verdicts format=generic data=my_pairs.yaml verdicts=v.jsonl \\
        generic.id=uid generic.winner=choice 'generic.winner_values={A:1,B:-1,tie:0}' run=mine
    python -m launch.import_verdicts format=alpaca_eval 'verdicts=data/evaluation/alpaca_eval/*/annotations.json' \\
        judge=gpt4_turbo run=alpaca-eval-gpt4-turbo

The run directory (``<runs_dir>/<run>/``) gets a verdict store, ``metrics.json`` and ``metrics.md`` like a judged
run, so ``make report`` and run comparisons treat it the same way.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING

from judgelm.config import ConfigError, load_config
from judgelm.data.answers import expand_paths
from judgelm.data.benchmarks import load_dataset
from judgelm.data.records import write_rejects
from judgelm.judging.alpaca_eval import import_annotations
from judgelm.judging.external import FORMATS, GenericFields, import_verdicts, read_verdicts
from judgelm.judging.validate import data_notes
from judgelm.results.leaderboard import LEADERBOARD_MD
from judgelm.results.merge import merge_run
from judgelm.results.tables import format_table
from judgelm.rundir import RunDir, check_run_name
from launch.cli import run_main
from launch.configs import GenericFieldsConfig


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
    skip_invalid: bool = False
    """Skip verdicts that cannot be used (bad rows, unknown ids, repeats, records that fail validation), listed
    in the run's ``rejects.jsonl`` and counted, instead of stopping."""
    run: str = MISSING
    """The new run's name."""
    runs_dir: str = "runs"
    """Where run directories are created."""
    generic: GenericFieldsConfig = field(default_factory=GenericFieldsConfig)
    """Field names of a ``generic`` verdict file."""


def import_run(argv: list[str]) -> int:
    cfg = load_config(ImportConfig, None, argv)
    if cfg.format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {cfg.format!r}")
    rd = RunDir(Path(cfg.runs_dir).resolve() / check_run_name(cfg.run))
    if rd.root.exists():
        raise ConfigError(f"{rd.root} already exists; choose another run")
    if cfg.format == "alpaca_eval":
        return import_alpaca_eval(cfg, rd)
    if not cfg.data:
        raise ConfigError(f"format={cfg.format} needs data=... (the records the verdicts judged)")
    fields = GenericFields(cfg.generic.id or "", cfg.generic.winner, cfg.generic.winner_values,
                           tuple(cfg.generic.scores))
    rejects: list | None = [] if cfg.skip_invalid else None
    original = read_verdicts(cfg.verdicts, cfg.format, fields, rejects)
    swapped = read_verdicts(cfg.swapped, cfg.format, fields, rejects) if cfg.swapped else None
    loaded = load_dataset(cfg.data, cfg.skip_invalid)
    rd.root.mkdir(parents=True)
    try:  # a failed import leaves no directory behind that would later pass for a run
        result = import_verdicts(rd.store, loaded, original, swapped, cfg.with_reference, attrs={
            "run": cfg.run, "model": cfg.judge or Path(cfg.verdicts).stem, "data": cfg.data,
            "imported_from": [str(Path(p).resolve()) for p in (cfg.verdicts, cfg.swapped) if p],
            "verdict_format": cfg.format, **data_notes(loaded)}, rejects=rejects)
        skipped = loaded.rejects + (rejects or [])
        if skipped:
            write_rejects(skipped, rd.rejects)
        metrics = merge_run(rd.root)
    except BaseException:
        shutil.rmtree(rd.root, ignore_errors=True)
        raise
    print(f"imported {result.records} records ({result.records_without_verdict} records of {cfg.data} had no verdict"
          + (f"; {len(skipped)} invalid rows skipped, see {rd.rejects}" if skipped else "") + ")")
    print(format_table(metrics), end="")
    print(f"run directory: {rd.root}")
    return 0


def import_alpaca_eval(cfg: ImportConfig, rd: RunDir) -> int:
    """AlpacaEval annotation files: the answers, their generators and the verdicts at once; a model evaluation."""
    paths = expand_paths(cfg.verdicts)
    try:  # a failed import leaves no directory behind that would later pass for a run
        store = import_annotations(rd.store, paths, attrs={
            "run": cfg.run, "model": cfg.judge or "alpaca_eval annotator", "data": cfg.verdicts,
            "imported_from": [str(p.resolve()) for p in paths], "verdict_format": cfg.format})
        metrics = merge_run(rd.root)
    except BaseException:
        shutil.rmtree(rd.root, ignore_errors=True)
        raise
    print(f"imported {store.n_records} annotations from {len(paths)} file(s)")
    print(format_table(metrics) + "\n" + (rd.root / LEADERBOARD_MD).read_text(), end="")
    print(f"run directory: {rd.root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(import_run, __doc__, ImportConfig, argv)


if __name__ == "__main__":
    raise SystemExit(main())
