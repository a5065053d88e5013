"""The typed config of a judging run (``configs/judge.yaml``), as the library sees it.

The launcher adds the cluster profile on top; everything here is fixed when the run is created and saved in
``runs/<run>/config.yaml``, which every shard and the merge read back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from judgelm.config import config_hash, load_saved
from judgelm.inference.config import EngineConfig, ModelConfig
from judgelm.profiles import PROFILES, JudgeProfileConfig
from judgelm.rundir import RunDir


@dataclass
class DataConfig:
    """What to judge."""

    source: str = "pandalm"
    """A shipped benchmark name (``pandalm``, ...) or a JudgeLM-format JSON/JSONL file."""
    skip_invalid: bool = False
    """Skip records that fail validation (written to ``rejects.jsonl`` and counted) instead of stopping."""
    limit: int = 0
    """Judge only the first N records (0: all), for quick tries."""


@dataclass
class PromptConfig:
    """How units are laid out and rendered."""

    mode: str = "pair"
    """``pair`` (two answers, two scores), ``single`` (gold answer in slot 1 pre-scored 10, one score) or
    ``multi`` (N answers, N scores)."""
    reference: str = "both"
    """``both``: judge without the reference and, where a record has one, with it too (JudgeLM's protocol,
    reported separately); ``without``; ``with`` (where available)."""
    orders: str = "both"
    """``both`` judges every pair in both answer orders (needed for consistency); ``original`` only as given."""
    turns: int = 0
    """Multi-turn conversations: judge their first N turns, each turn as its own unit showing the turns before it
    (0: every turn, as MT-Bench does)."""


@dataclass
class StoreConfig:
    """The Zarr verdict store."""

    chunk_units: int = 512
    """Largest chunk, in units: the unit of ownership, commit and resume (a requeued shard redoes at most one),
    and of one engine call. The actual size is chosen so that every shard owns the same number of chunks, give or
    take one. Bigger calls batch better: the default ``make judge`` spent 13.2 s in its engine with chunks of 128
    and 11.5 s with 512, as much as the same units in one call (``make bench``, 2-core CPU); on a GPU a 7B judge
    does 512 units in seconds, so a requeue still loses little."""


POLICIES = ("primary", "majority", "mean", "first_parseable", "expected")


@dataclass
class MergeConfig:
    """How the merge turns stored draws into verdicts; ``judgelm merge RUN --policy P`` changes it later."""

    policy: str = "primary"
    """``primary``, ``majority``, ``mean``, ``first_parseable`` or ``expected`` (``judgelm.scoring.verdict_policy``)."""

    def validate(self) -> None:
        check_policy(self.policy)


@dataclass
class LeaderboardConfig:
    """How the merge rates models in a model evaluation: bootstraps and style control
    (``judgelm.scoring.arena_hard``)."""

    rounds: int = 100
    """Bootstrap rounds of the Arena-Hard scores and of the style-controlled ratings (Arena-Hard-Auto's 100)."""
    level: float = 0.90
    """Level of their intervals: 0.90 gives the 5th and 95th percentiles (Arena-Hard-Auto v2.0's)."""
    seed: int = 0
    """Seed of those bootstraps (numpy's RandomState, as Arena-Hard-Auto draws them)."""
    style: bool = True
    """Add a style-controlled rating (answer length and markdown as covariates) to every pairwise board."""
    style_center: bool = True
    """Centre the style features when standardising them, as Arena-Hard-Auto does: a style-controlled score is then
    the win rate at the board's average style difference; ``false`` reads it at equal style."""
    style_frozen: str = ""
    """The ``style_control.json`` of an earlier run: standardise the style features with its constants, so that
    scores do not move when a model is added (empty: fit them on this board's battles)."""
    style_freeze: str = "normalization"
    """With ``style_frozen``: ``normalization`` (its constants) or ``all`` (its coefficients too)."""
    checklist_tie_margin: float = 0.1
    """RocketEval: two answers whose predicted scores differ by at most this are a tie (its ``all_compare``)."""

    def validate(self) -> None:
        if self.rounds < 1 or not 0 < self.level < 1:
            raise ValueError(f"leaderboard.rounds must be >= 1 and leaderboard.level in (0, 1), got {self.rounds}, "
                             f"{self.level}")
        if self.style_freeze not in ("normalization", "all"):
            raise ValueError(f"leaderboard.style_freeze must be normalization or all, got {self.style_freeze!r}")
        if self.style_frozen:
            if not Path(self.style_frozen).is_file():
                raise ValueError(f"leaderboard.style_frozen={self.style_frozen}: no such file (give the "
                                 f"style_control.json of an earlier run)")
            self.style_frozen = str(Path(self.style_frozen).resolve())  # the merge job may run elsewhere


def check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise ValueError(f"merge.policy must be one of {', '.join(POLICIES)}, got {policy!r}")


@dataclass
class JudgeConfig:
    """A judging run."""

    run: str = ""
    """Run name; the run lives in ``<runs_dir>/<run>/``. Empty: ``judge-<date>-<time>``."""
    runs_dir: str = "runs"
    """Where run directories are created."""
    shards: int = 4
    """Number of shards (array tasks); each owns a contiguous run of chunks."""
    allow_partial: bool = False
    """Let the merge compute metrics from an incomplete store, saying what is missing."""
    verdict_cache: bool = True
    """Reuse verdicts that any run next to this one already computed with the same judge, decoding settings and
    prompt, and add this run's (``<runs_dir>/.verdict-cache/``, ``judgelm.judging.verdict_cache``)."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    merge: MergeConfig = field(default_factory=MergeConfig)
    """How the merge turns a unit's verdicts into one (``merge.policy``): changeable without judging again."""
    leaderboard: LeaderboardConfig = field(default_factory=LeaderboardConfig)
    """How model evaluations are rated: bootstrap rounds and interval level, style control."""
    judge: JudgeProfileConfig = field(default_factory=JudgeProfileConfig)
    """Which published judge's prompt and parser (``judge.profile=prometheus2``); ``judgelm`` is JudgeLM's own."""

    def __post_init__(self) -> None:
        # Fast mode stops at the first newline; a judge that explains before its verdict would never get there.
        profile = PROFILES.get(self.judge.profile)
        if self.engine.mode == "fast" and profile is not None and not profile.verdict_first:
            self.engine.mode = "full"
        for key, value in (profile.engine_defaults if profile is not None else {}).items():
            if not getattr(self.engine, key):
                setattr(self.engine, key, value)

    def fingerprint(self) -> str:
        """Hash of the library's fields only, so a launcher's additions (where the run executes) do not change it:
        shown in Slurm comments and stored in the run."""
        return config_hash({f.name: getattr(self, f.name) for f in fields(JudgeConfig)})


def load_run_config(run_dir: str | Path) -> JudgeConfig:
    """The library's part of a run's saved ``config.yaml`` (the launcher's keys, like ``cluster``, are ignored)."""
    return load_saved(JudgeConfig, RunDir(Path(run_dir)).config)
