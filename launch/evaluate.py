"""``make evaluate``: the judge evaluates models from their answers, and the run ends with a model leaderboard.

    python -m launch.evaluate [evaluate.answers='[FORMAT:PATH,...]'] [evaluate.pairing=vs-baseline|all-pairs|single]
        [evaluate.baseline=MODEL] [evaluate.limit=100] [model.path=DIR] [shards=4] [cluster=local] ...

The default (``configs/evaluate.yaml``): the tiny judge evaluates the six AlpacaEval models shipped in
``data/evaluation/alpaca_eval`` against the baseline gpt4_1106_preview in both orders, on 100 of the 805
instructions spread evenly (``evaluate.limit=0``: all), and puts its leaderboard next to GPT-4 Turbo's on the same
instructions. Every comparison becomes an ordinary judging record (``judgelm.data.pairing``), so shards,
resume, Slurm and the merge work as for ``make judge``; verdicts already in the verdict cache are not judged again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from judgelm.config import CONFIG_DIR, load_config, to_yaml
from judgelm.data.answers import expand_paths, load_answers
from judgelm.data.pairing import pair_records, spread_questions
from judgelm.data.records import Loaded
from judgelm.judging.alpaca_eval import import_annotations
from judgelm.judging.run import create_run, plan_run
from judgelm.results.leaderboard import LEADERBOARD_MD, REFERENCE_JSON, build_leaderboard
from judgelm.rundir import RunDir, check_run_name, write_text_atomic
from launch.cli import exit_now, run_main
from launch.configs import JudgeLaunchConfig
from launch.submission import launch


@dataclass
class EvaluationConfig:
    """Which answers are compared, how, and against which reference leaderboard."""

    answers: list[str] = field(default_factory=list)
    """``FORMAT:PATH[,PATH]`` specs (globs allowed): fastchat, alpaca_eval, alpaca_eval_annotations, judgelm, generic
    (``judgelm.data.answers``)."""
    pairing: str = "vs-baseline"
    """``vs-baseline`` (every model against ``baseline``), ``all-pairs`` or ``single`` (absolute scores)."""
    baseline: str = ""
    """The baseline model (vs-baseline), or the anchor of single-answer grading where a question has no reference."""
    models: list[str] = field(default_factory=list)
    """The models to evaluate (empty: every model in the answers)."""
    limit: int = 0
    """Evaluate only this many questions, spread evenly over the data (0: all)."""
    budget: int = 0
    """all-pairs: at most this many model pairs per question, drawn with ``seed`` (0: every pair)."""
    seed: int = 0
    """Seed of the all-pairs budget draw."""
    reference_verdicts: str = ""
    """AlpacaEval annotation files (comma-separated, globs) of a reference judge on the same answers; its leaderboard
    on the evaluated questions is put next to this judge's, with rank correlations (empty: none)."""
    reference_judge: str = "reference judge"
    """The reference judge's name in the report."""


@dataclass
class EvaluateLaunchConfig(JudgeLaunchConfig):
    """A model evaluation: a judging run whose records come from ``evaluate``."""

    evaluate: EvaluationConfig = field(default_factory=EvaluationConfig)


def evaluation_records(ev: EvaluationConfig) -> Loaded:
    data = spread_questions(load_answers(ev.answers), ev.limit)
    return Loaded(records=pair_records(data, ev.pairing, ev.baseline, ev.models, ev.budget, ev.seed))


def write_reference(rd: RunDir, ev: EvaluationConfig, loaded: Loaded) -> None:
    """The reference judge's leaderboard over exactly the evaluated questions, for the merge to compare with."""
    questions = {r.question for r in loaded.records}
    store = import_annotations(rd.root / "reference" / "verdicts.zarr", expand_paths(ev.reference_verdicts),
                               {"run": f"{rd.name}/reference", "model": ev.reference_judge}, questions)
    board = build_leaderboard(store)
    board["judge"] = ev.reference_judge
    write_text_atomic(rd.root / REFERENCE_JSON, json.dumps(board, indent=2) + "\n")


def evaluate(argv: list[str]) -> int:
    started = time.time()
    cfg = load_config(EvaluateLaunchConfig, CONFIG_DIR / "evaluate.yaml", argv, groups=("cluster",))
    cfg.run = check_run_name(cfg.run or time.strftime("evaluate-%Y%m%d-%H%M%S"))
    ev = cfg.evaluate
    cfg.prompt.mode = "single" if ev.pairing == "single" else "pair"
    cfg.data.source = "evaluation: " + " ".join(ev.answers)
    cfg.engine.validate()
    loaded = evaluation_records(ev)
    # All-pairs has no baseline in its leaderboard: every model's win rate is against every other model.
    baseline = "" if ev.pairing == "all-pairs" else ev.baseline
    rd = create_run(plan_run(cfg, loaded), to_yaml(cfg),
                    attrs={"evaluation": {"pairing": ev.pairing, "baseline": baseline}})
    if ev.reference_verdicts:
        write_reference(rd, ev, loaded)
    rc = launch(rd, cfg, list(range(cfg.shards)), started)
    if (rd.root / LEADERBOARD_MD).exists():
        print("\n" + (rd.root / LEADERBOARD_MD).read_text(), end="", flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    return run_main(evaluate, __doc__, EvaluateLaunchConfig, argv)


if __name__ == "__main__":
    exit_now(main())
