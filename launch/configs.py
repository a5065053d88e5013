"""The launcher's configs: the library's config of a run plus where and how it runs.

One pattern for judging and training: the library schema (``JudgeConfig``, ``TrainConfig``) knows nothing of
clusters; the launcher schema here adds the cluster profile and the submission switches, is what the command line
fills and what a run saves as ``config.yaml``. The library reads its own part of that file back
(``judgelm.config.load_saved``), so the launcher's keys never reach a hash of what determines the results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from judgelm.config import CONFIG_DIR, ConfigError, load_config, load_group, load_saved
from judgelm.generation.config import GenerationConfig
from judgelm.judging.config import JudgeConfig
from judgelm.rundir import RunDir, check_run_name
from judgelm.train.config import TrainConfig, load_train_config
from launch.cluster import ClusterConfig


@dataclass
class LaunchFields:
    """What every submission adds to a run's config."""

    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """The cluster profile (``cluster=NAME`` loads ``configs/cluster/NAME.yaml``; ``cluster.key=value`` overrides)."""
    dry_run: bool = False
    """Print the resolved config, the plan and the sbatch script; submit nothing."""
    wait: bool = True
    """Follow the run until it ends. With Slurm, ``false`` returns right after submission and prints how to follow
    it. The local executor always waits."""


@dataclass
class JudgeLaunchConfig(JudgeConfig, LaunchFields):
    """A judging run plus where it runs."""


@dataclass
class GenerateLaunchConfig(GenerationConfig, LaunchFields):
    """A generation run plus where it runs."""


@dataclass
class TrainLaunchConfig(TrainConfig, LaunchFields):
    """A training run plus where it runs."""

    default_cluster: str = "local"
    """Cluster profile used when the command line names none: the sizes that need GPUs name their production
    profile, so ``make train SIZE=33b DRY_RUN=1`` shows the real plan."""
    wait: bool = False
    """With Slurm, wait for the job and follow its log (a local run is always followed to the end)."""


@dataclass
class GenericFieldsConfig:
    id: str | None = "id"
    """The field holding the record id; empty: the verdicts are in the data's order (line numbers)."""
    winner: str = ""
    """The field holding the verdict (mapped by ``winner_values``)..."""
    winner_values: Any = field(default_factory=dict)
    """...raw value -> 1 (answer 1 better), 0 (tie), -1 (answer 2 better): ``{A:1,B:-1,tie:0}`` or, safe from the
    shell's brace expansion, ``A:1,B:-1,tie:0``."""
    scores: list[str] = field(default_factory=list)
    """...or the two fields holding the scores of answer 1 and answer 2."""


def load_judge_config(argv: list[str], schema: type[JudgeLaunchConfig] = JudgeLaunchConfig,
                      defaults: tuple[str, ...] = (), prefix: str = "judge") -> JudgeLaunchConfig:
    """``configs/judge.yaml`` + ``cluster=NAME`` + overrides; the run name defaulted and checked."""
    cfg = load_config(schema, CONFIG_DIR / "judge.yaml", [*defaults, *argv], groups=("cluster",))
    cfg.run = check_run_name(cfg.run or time.strftime(f"{prefix}-%Y%m%d-%H%M%S"))
    return cfg


def load_generate_config(argv: list[str]) -> GenerateLaunchConfig:
    """``configs/generate.yaml`` + ``cluster=NAME`` + overrides; the run name defaulted and checked."""
    cfg = load_config(GenerateLaunchConfig, CONFIG_DIR / "generate.yaml", argv, groups=("cluster",))
    cfg.run = check_run_name(cfg.run or time.strftime("generate-%Y%m%d-%H%M%S"), nested=True)
    return cfg


def load_train_launch_config(argv: list[str]) -> TrainLaunchConfig:
    """The size's config with its ``default_cluster`` profile unless the command line names one."""
    if not any(a.startswith("cluster=") for a in argv):
        sizes = [a.split("=", 1)[1] for a in argv if a.startswith("size=")]
        argv = [f"cluster={load_group('train', (sizes or ['tiny'])[-1]).get('default_cluster', 'local')}", *argv]
    return load_train_config(argv, TrainLaunchConfig, groups=("cluster",))


def saved_judge_config(rd: RunDir, overrides: list[str], schema: type = JudgeLaunchConfig) -> JudgeLaunchConfig:
    """A run's own config for a resubmission; only where it runs (``cluster``) and ``wait`` may change. ``schema``:
    the run's launcher config (``GenerateLaunchConfig`` for a generation run)."""
    for item in overrides:
        key = item.partition("=")[0]
        if key not in ("cluster", "wait") and not key.startswith("cluster."):
            raise ConfigError(f"{key}: a run's config is fixed when it is created; only cluster.* and wait can change")
    cluster = [o for o in overrides if o.startswith("cluster=")]
    rest = [o for o in overrides if not o.startswith("cluster=")]
    cfg = load_saved(schema, rd.config)
    if cluster:  # a new profile replaces the saved one whole, then its fields may be overridden
        cfg.cluster = load_config(ClusterConfig, load_group("cluster", cluster[-1].split("=", 1)[1]))
    return load_config(schema, OmegaConf.structured(cfg), rest)
