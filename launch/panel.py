"""``make panel``: add a judge to a judged run, so the merge compares the run's judge with a panel
(``judgelm.judging.panel``).

    python -m launch.panel run=RUN judge=NAME model=DIR [cluster=NAME] [cluster.key=value ...] [wait=true|false]
    python -m launch.panel run=RUN judge=NAME verdicts=FILE format=judgelm|pandalm|generic [swapped=FILE] [generic.*=..]
    python -m launch.panel run=RUN judge=NAME labels=true

A model judges the run's units as one job array of the run's shard count (``judgelm-judge:<run>:<NAME>``) with the
run's engine and prompt settings, writing ``judges/<NAME>/`` of the run's store; on Slurm a merge job follows it.
Run it again with the same NAME to resume a judge whose shards stopped. Imported verdicts (the formats of
``make import``) and the records' ground-truth labels are written at once. Then the run is merged again and its
table printed, with the panel's section. RUN is a name under ``runs_dir`` or an absolute path.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from judgelm.config import ConfigError, load_config
from judgelm.judging.external import FORMATS, GenericFields, read_verdicts
from judgelm.judging.panel import add_model_judge, import_judge, label_judge
from judgelm.judging.store import VerdictStore
from judgelm.results.merge import merge_run
from judgelm.results.tables import format_table
from judgelm.rundir import RunDir
from launch.cli import run_main
from launch.configs import GenericFieldsConfig, JudgeLaunchConfig, saved_judge_config
from launch.submission import submit

_WHERE = ("cluster", "wait")  # overrides that go to the run's saved config: where the judge's shards run


@dataclass
class PanelConfig:
    judge: str = ""
    """The panel judge's name (letters, digits, '.', '_', '-'); its verdicts go to ``judges/<name>/``."""
    model: str = ""
    """A model (directory or hub id) that judges the run's units..."""
    verdicts: str = ""
    """...or an external judge's verdict file for the answers in their original order..."""
    labels: bool = False
    """...or the records' ground-truth labels as a judge (e.g. PandaLM's human majority)."""
    swapped: str = ""
    """Imported verdicts for the swapped answer order (optional)."""
    format: str = "generic"
    """Format of ``verdicts``: ``judgelm``, ``pandalm`` or ``generic`` (``judgelm.judging.external``)."""
    id_prefix: str = ""
    """Put before each imported verdict's id: records of a ``make benchmark`` run are ``<benchmark>/<id>``."""
    generic: GenericFieldsConfig = field(default_factory=GenericFieldsConfig)
    """Field names of a ``generic`` verdict file."""
    run: str = ""
    """The judged run to add the judge to."""
    runs_dir: str = "runs"
    """Where run directories are."""


def judge_with_model(rd: RunDir, run: JudgeLaunchConfig, name: str, model: str) -> int:
    """Submit the judge's shards whose chunks are not done as one array (and a merge job on Slurm); wait locally."""
    store = VerdictStore(rd.store, mode="r+")
    if name not in store.judges():
        add_model_judge(store, name, str(Path(model).resolve()) if Path(model).exists() else model)
    view = store.judge(name)
    done = view.done()
    todo = [k for k in range(run.shards) if not done[view.shard_slice(k, run.shards)].all()]
    sub = submit(rd, run, todo, judge=name)
    jobs, merge = sub.shard_jobs, sub.merge_job
    if run.cluster.executor == "slurm" and not run.wait:
        print(f"judge {name}: array {jobs[0].job_id.split('_')[0] if jobs else '-'} (shards {todo}), merge job "
              f"{merge.job_id}; follow with sacct -j <ids>, then `judgelm merge {rd.root}`")
        return 0
    failed = [k for k, j in zip(todo, jobs) if j.exception() is not None]
    if failed:
        print(f"error: judge {name}: shards {failed} failed (logs under {rd.logs}); run this again to resume them",
              file=sys.stderr)
        return 1
    return 0


def add_imported(store: VerdictStore, cfg: PanelConfig) -> str:
    if cfg.labels:
        return f"{label_judge(store, cfg.judge)} units labelled"
    if cfg.format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {cfg.format!r}")
    fields = GenericFields(cfg.generic.id or "", cfg.generic.winner, cfg.generic.winner_values,
                           tuple(cfg.generic.scores))
    swapped = read_verdicts(cfg.swapped, cfg.format, fields) if cfg.swapped else None
    n, other = import_judge(store, cfg.judge, read_verdicts(cfg.verdicts, cfg.format, fields), swapped, attrs={
        "model": cfg.judge, "imported_from": [str(Path(p).resolve()) for p in (cfg.verdicts, cfg.swapped) if p],
        "verdict_format": cfg.format}, id_prefix=cfg.id_prefix)
    return f"{n} units with a verdict ({other} verdicts for records this run does not have)"


def panel(argv: list[str]) -> int:
    where = [o for o in argv if o.partition("=")[0].split(".")[0] in _WHERE]
    cfg = load_config(PanelConfig, None, [o for o in argv if o not in where])
    rd = RunDir.existing(cfg.runs_dir, cfg.run)
    if not cfg.judge or sum([bool(cfg.model), bool(cfg.verdicts), cfg.labels]) != 1:
        raise ConfigError("give judge=NAME and exactly one of model=DIR, verdicts=FILE or labels=true")
    if cfg.model:
        rc = judge_with_model(rd, saved_judge_config(rd, where), cfg.judge, cfg.model)
        if rc or incomplete_shards_of(rd, cfg.judge):
            return rc
    else:
        print(f"judge {cfg.judge}: {add_imported(VerdictStore(rd.store, mode='r+'), cfg)}")
    print(format_table(merge_run(rd.root)), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(panel, __doc__, PanelConfig, argv)


def incomplete_shards_of(rd: RunDir, judge: str) -> bool:
    """Whether the judge still has units to judge (Slurm without waiting: the merge job will report)."""
    return not VerdictStore(rd.store).judge(judge).done().all()


if __name__ == "__main__":
    raise SystemExit(main())
