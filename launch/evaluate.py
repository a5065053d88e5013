"""``make evaluate``: the judge evaluates models from their answers, and the run ends with a model leaderboard.

    python -m launch.evaluate [evaluate.answers='[FORMAT:PATH,...]'] [evaluate.pairing=vs-baseline|all-pairs|single]
        [evaluate.baseline=MODEL] [evaluate.limit=100] [model.path=DIR] [shards=4] [cluster=local] ...
    python -m launch.evaluate evaluate.generate='[MODEL_DIR,...]' evaluate.questions=alpaca_eval|mt_bench|FILE ...

With ``evaluate.generate`` (``make evaluate MODELS=…``) the models' answers are generated first: one generation
array per model with answers left to generate, the judging array after them, then the merge, as one DAG of jobs
(``launch/dag.py``); the question set's own answers and baseline are used unless given.

The default (``configs/evaluate.yaml``): the tiny judge evaluates the six AlpacaEval models shipped in
``data/evaluation/alpaca_eval`` against the baseline gpt4_1106_preview in both orders, on 100 of the 805
instructions spread evenly (``evaluate.limit=0``: all), and puts its leaderboard next to GPT-4 Turbo's on the same
instructions. Every comparison becomes an ordinary judging record (``judgelm.data.pairing``), so shards,
resume, Slurm and the merge work as for ``make judge``; verdicts already in the verdict cache are not judged again.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field

from judgelm.config import CONFIG_DIR, ConfigError, load_config, to_yaml
from judgelm.data.answers import AnswerSet, expand_paths, load_answers
from judgelm.data.checklists import Checklists, covered, load_checklists
from judgelm.data.pairing import pair_records, spread_questions
from judgelm.data.records import Loaded, RecordError, iter_dicts
from judgelm.generation.run import incomplete_shards
from judgelm.judging.alpaca_eval import Annotation, annotation_store, read_annotations
from judgelm.judging.run import create_run, plan_run
from judgelm.results.leaderboard import LEADERBOARD_MD, REFERENCE_JSON, REFERENCE_SCORES, build_leaderboard
from judgelm.rundir import RunDir, check_run_name, write_text_atomic
from launch.cli import exit_now, run_main
from launch.configs import JudgeLaunchConfig
from launch.dag import GenerationSettings, create_dag, dag_plan_text, run_dag
from launch.submission import EVALUATE, dry_run_text, launch


@dataclass
class EvaluationConfig:
    """Which answers are compared, how, and against which reference leaderboard."""

    answers: list[str] = field(default_factory=list)
    """``FORMAT:PATH[,PATH]`` specs (globs allowed): fastchat, alpaca_eval, alpaca_eval_annotations, judgelm, generic
    (``judgelm.data.answers``)."""
    pairing: str = "vs-baseline"
    """``vs-baseline`` (every model against ``baseline``), ``all-pairs``, ``single`` (absolute scores) or
    ``checklist`` (RocketEval: every answer graded on its question's checklist, ``judge.profile=rocketeval``)."""
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
    checklists: str = ""
    """pairing=checklist (RocketEval, ``judge.profile=rocketeval``): a checklist file, one row per question
    (``question_id`` or ``question`` text, ``checklist``: the items; ``judgelm.data.checklists``)."""
    reference_scores: str = ""
    """pairing=checklist: a strong judge's scores of some models' answers (JSONL: ``question_id`` or ``question``,
    ``model``, ``score``), on which RocketEval's per-question predictor is fitted (empty: the plain average)."""
    generate: list[str] = field(default_factory=list)
    """Model directories (or hub ids) whose answers are generated first, then judged (``make evaluate MODELS=…``):
    one generation array each, the judging array after them (``launch/dag.py``)."""
    questions: str = ""
    """With ``generate``: the question set the models answer (``alpaca_eval``, ``mt_bench`` or a file; empty:
    ``alpaca_eval``); ``limit`` of them, spread evenly."""


@dataclass
class EvaluateLaunchConfig(JudgeLaunchConfig):
    """A model evaluation: a judging run whose records come from ``evaluate``."""

    evaluate: EvaluationConfig = field(default_factory=EvaluationConfig)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    """How the models of ``evaluate.generate`` generate their answers."""


def evaluation_data(ev: EvaluationConfig, turns: int = 0) -> AnswerSet:
    """The evaluated questions and answers: conversations cut to their first ``turns`` turns (0: every turn), and
    with pairing checklist only the questions that have a checklist."""
    data = spread_questions(load_answers(ev.answers), ev.limit)
    if turns:
        data = data.first_turns(turns)
    if ev.pairing == "checklist":  # only the questions that have a checklist are graded
        checklists = load_checklists(ev.checklists) if ev.checklists else Checklists()
        keep = covered(checklists, data)
        if not keep:
            raise ConfigError(f"evaluate.checklists={ev.checklists or '(none)'}: none of the {len(data.questions)} "
                              f"evaluated questions has a checklist in it ({len(checklists)} checklists); make them "
                              f"with make checklists, for the same questions")
        data = AnswerSet({k: data.questions[k] for k in keep}, {k: data.answers[k] for k in keep})
    return data


def evaluation_records(ev: EvaluationConfig, data: AnswerSet) -> Loaded:
    checklists = load_checklists(ev.checklists) if ev.checklists else None
    return Loaded(records=pair_records(data, ev.pairing, ev.baseline, ev.models, ev.budget, ev.seed, checklists))


def write_reference_scores(rd: RunDir, path: str, data: AnswerSet) -> int:
    """A strong judge's scores, keyed by the run's question ids, for the merge's RocketEval predictor."""
    ids = {q.text: str(q.question_id) for q in data.questions.values()}
    rows = []
    for src, obj in iter_dicts(path):
        key = obj.get("question_id", obj.get("session_id"))
        qid = str(key) if key is not None else ids.get(obj.get("question", ""))
        model = obj.get("model", obj.get("model_test"))
        score = obj.get("score")
        if not isinstance(model, str) or isinstance(score, bool) or not isinstance(score, (int, float)):
            raise RecordError(src, "model" if not isinstance(model, str) else "score",
                              "expected a model name and a numeric score")
        if qid in data.answers and model in data.answers[qid]:
            rows.append({"question_id": qid, "model": model, "score": float(score)})
    write_text_atomic(rd.root / REFERENCE_SCORES, "".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def reference_rows(ev: EvaluationConfig, loaded: Loaded) -> list[Annotation]:
    """The reference judge's annotations of the evaluated questions; none, with a warning, when they cover none of
    them (the default AlpacaEval judge on MT-Bench answers): the run then has no reference leaderboard."""
    if not ev.reference_verdicts:
        return []
    questions = {r.question for r in loaded.records}
    rows = read_annotations(expand_paths(ev.reference_verdicts), questions)
    if not rows:
        logging.getLogger("launch.evaluate").warning(
            "no reference leaderboard: %s annotates none of the %d evaluated questions", ev.reference_judge,
            len(questions))
    return rows


def write_reference(rd: RunDir, ev: EvaluationConfig, rows: list[Annotation]) -> None:
    """The reference judge's leaderboard over exactly the evaluated questions (``reference_rows``), for the merge
    to compare with."""
    if not rows:
        return
    store = annotation_store(rd.root / "reference" / "verdicts.zarr", rows,
                             {"run": f"{rd.name}/reference", "model": ev.reference_judge})
    board = build_leaderboard(store)
    board["judge"] = ev.reference_judge
    write_text_atomic(rd.root / REFERENCE_JSON, json.dumps(board, indent=2) + "\n")


def evaluate(argv: list[str]) -> int:
    started = time.time()
    cfg = load_config(EvaluateLaunchConfig, CONFIG_DIR / "evaluate.yaml", argv, groups=("cluster",))
    cfg.run = check_run_name(cfg.run or time.strftime("evaluate-%Y%m%d-%H%M%S"))
    ev = cfg.evaluate
    if ev.generate:
        if ev.pairing == "checklist":
            raise ConfigError("evaluate.pairing=checklist grades answers already written: generate them with make "
                              "generate, then pass them as evaluate.answers (MODELS= cannot grade checklists yet)")
        given = {a.partition("=")[0] for a in argv}
        if cfg.dry_run:
            print(dag_plan_text(cfg, given))
            return 0
        rd, runs = create_dag(cfg, given)
        return run_dag(rd, cfg, [(grd, gcfg, incomplete_shards(grd, gcfg.shards)) for grd, gcfg in runs], started)
    cfg.prompt.mode = "single" if ev.pairing in ("single", "checklist") else "pair"
    if (ev.pairing == "checklist") != (cfg.judge.profile == "rocketeval"):
        raise ConfigError("RocketEval grades checklists: use evaluate.pairing=checklist with judge.profile=rocketeval "
                          f"(got pairing {ev.pairing}, profile {cfg.judge.profile})")
    cfg.data.source = "evaluation: " + " ".join(ev.answers)
    cfg.engine.validate()
    if cfg.dry_run:
        print(dry_run_text(cfg))
        return 0
    data = evaluation_data(ev, cfg.prompt.turns)
    loaded = evaluation_records(ev, data)
    rows = reference_rows(ev, loaded)  # read (and any mistake in them named) before the run is created
    # All-pairs has no baseline in its leaderboard: every model's win rate is against every other model.
    baseline = "" if ev.pairing == "all-pairs" else ev.baseline
    rd = create_run(plan_run(cfg, loaded), to_yaml(cfg),
                    attrs={"evaluation": {"pairing": ev.pairing, "baseline": baseline}})
    if ev.reference_scores:
        write_reference_scores(rd, ev.reference_scores, data)
    rc = launch(rd, cfg, list(range(cfg.shards)), started, kind=EVALUATE,
                alongside=functools.partial(write_reference, rd, ev, rows) if rows else None)
    if (rd.root / LEADERBOARD_MD).exists():
        print("\n" + (rd.root / LEADERBOARD_MD).read_text(), end="", flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    return run_main(evaluate, __doc__, EvaluateLaunchConfig, argv)


if __name__ == "__main__":
    exit_now(main())
