"""``make evaluate MODELS=…``: models' answers are generated, then judged, as one DAG of jobs submitted at once.

    judgelm-generate:<run>/generated/<model>  (one array per model with answers left to generate)
        └─afterok─▶ judgelm-build:<run>  (exports the answers, builds the judging run's store from them)
                      └─afterok─▶ judgelm-judge:<run>  (the judging array)  └─afterany─▶ judgelm-merge:<run>

Everything is created and sized before anything is submitted: each model's generation run
(``runs/<run>/generated/<model>/``, answers taken from the answer cache where it has them), and the judging run's
config, whose shards come from the evaluation's exact shape (the generated answers' files written with a
placeholder text give which comparisons, and so how many units, there will be). The judging run's answer texts do
not exist yet: the build job writes its store once the answers are there, and the judging array waits for it. With
the local executor the same steps run one after the other. A generation shard that fails or is cancelled leaves the
build, judging and merge jobs pending (their dependency can never be satisfied); ``make status`` names the shard and
``make resubmit RUN=<run>`` cancels those jobs and continues the whole DAG from where it stopped.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judgelm.config import ConfigError, load_saved, to_yaml
from judgelm.data.pairing import pair_records
from judgelm.data.records import Loaded
from judgelm.generation.config import ANSWER_CHUNK, GenerateConfig, QuestionsConfig, model_id_of
from judgelm.generation.evaluation import answer_counts, evaluation_answers, generation_runs, model_ids
from judgelm.generation.export import export_run
from judgelm.generation.questions import QuestionSet, question_set
from judgelm.generation.run import create_generation, plan_generation
from judgelm.generation.store import AnswerStore
from judgelm.inference.config import EngineConfig, ModelConfig, context_length
from judgelm.judging.config import StoreConfig
from judgelm.judging.run import is_tiny_judge, plan_run, write_store
from judgelm.results.leaderboard import LEADERBOARD_MD
from judgelm.rundir import RunDir, new_run
from launch.cluster import make_executor
from launch.configs import GenerateLaunchConfig, saved_judge_config
from launch.dag_status import NEVER, blocked_generations, dag_jobs
from launch.sacct import active, pending_reasons
from launch.snapshot import snapshot_code
from launch.submission import (
    GENERATE,
    Submission,
    follow,
    follow_to_end,
    gpu_plan_text,
    merge_cluster,
    print_how_to_follow,
    record_submission,
    submit,
)

log = logging.getLogger("judgelm.dag")


@dataclass
class GenerationSettings:
    """How an evaluation's models answer (``make evaluate MODELS=…``): ``make generate``'s settings, shared by every
    model (``judgelm/generation/config.py`` documents them)."""

    shards: int = 0
    """Shards of each model's generation array; 0: the judging run's ``shards``."""
    answer_cache: bool = True
    """Take answers from the answer cache where it has them (``<runs_dir>/.answer-cache/``)."""
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(mode="full"))
    """The generating engine (backend, ``max_new_tokens``: 0 takes the question set's, ``temperature``...)."""
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    store: StoreConfig = field(default_factory=lambda: StoreConfig(chunk_units=ANSWER_CHUNK))


def apply_question_set(cfg, given: set[str]) -> None:
    """The question set's own answers (the baseline's), baseline and pairing, unless the command line gave them;
    ``configs/evaluate.yaml``'s are for its shipped AlpacaEval answers, not for generated ones. A set judged by its
    own judge (Arena-Hard-Auto) also sets the profile and the judge's token budget."""
    ev = cfg.evaluate
    qset = question_set(ev.questions or "alpaca_eval")
    ev.questions = qset.name  # a file's absolute path: the jobs start elsewhere
    if qset.note:
        log.info("%s", qset.note)
    if "evaluate.answers" not in given:
        ev.answers = [qset.answers] if qset.answers else []
    if "evaluate.baseline" not in given:
        ev.baseline = qset.baseline
    if "evaluate.reference_verdicts" not in given:
        ev.reference_verdicts = ""
    if "evaluate.pairing" not in given:
        ev.pairing = "vs-baseline" if ev.baseline else "all-pairs"
    if qset.judge_profile:
        apply_set_judge(cfg, qset, given)
    cfg.prompt.mode = "single" if ev.pairing == "single" else "pair"
    cfg.data.source = f"evaluation of {', '.join(model_id_of(p) for p in ev.generate)} on {Path(ev.questions).name}"


def apply_set_judge(cfg, qset: QuestionSet, given: set[str]) -> None:
    """The set's judge (profile, full generation, its token budget) for a set whose scores are defined by it; a
    setting that contradicts it is refused: its numbers would not be the benchmark's."""
    name = Path(qset.name).name
    if "judge.profile" in given and cfg.judge.profile != qset.judge_profile:
        raise ConfigError(f"judge.profile={cfg.judge.profile}: QUESTIONS={name} is judged with judge.profile="
                          f"{qset.judge_profile}; leave judge.profile out, or give the answers as evaluate.answers "
                          f"to judge them another way")
    if cfg.evaluate.pairing != "vs-baseline":
        raise ConfigError(f"evaluate.pairing={cfg.evaluate.pairing}: QUESTIONS={name} compares every model with a "
                          f"baseline (vs-baseline); leave evaluate.pairing out")
    cfg.judge.profile = qset.judge_profile
    cfg.engine.mode = "full"  # the judge explains before its verdict
    if "engine.max_new_tokens" not in given:
        cfg.engine.max_new_tokens = qset.judge_max_new_tokens
    config = Path(cfg.model.path) / "config.json"  # a local judge: its context is known before anything runs
    if config.is_file() and cfg.engine.max_new_tokens >= (context := context_length(cfg.model, cfg.engine)):
        raise ConfigError(f"engine.max_new_tokens={cfg.engine.max_new_tokens} (the {name} judge's) leaves no room for "
                          f"a prompt in {cfg.model.path}'s {context}-token context; give a smaller "
                          f"engine.max_new_tokens")


def generation_config(cfg, path: str) -> GenerateLaunchConfig:
    g = cfg.generation
    model_id = model_id_of(path)
    return GenerateLaunchConfig(
        run=f"{cfg.run}/generated/{model_id}", runs_dir=cfg.runs_dir, shards=g.shards or cfg.shards,
        answer_cache=g.answer_cache, model_id=model_id,
        questions=QuestionsConfig(cfg.evaluate.questions, cfg.evaluate.limit), model=ModelConfig(path=path),
        engine=EngineConfig(**vars(g.engine)), generate=GenerateConfig(**vars(g.generate)),
        store=StoreConfig(**vars(g.store)), cluster=cfg.cluster, wait=cfg.wait)


def dag_plan_text(cfg, given: set[str]) -> str:
    """``DRY_RUN=1``: the resolved config, then each model's generation plan and the judge's GPU plan."""
    apply_question_set(cfg, given)
    parts = [f"# resolved config (cfg={cfg.fingerprint()})\n{to_yaml(cfg)}"]
    for path in cfg.evaluate.generate:
        g = generation_config(cfg, path)
        parts.append(f"# generation of {g.model_id}: {g.shards} shards, judgelm-generate:{g.run}\n{gpu_plan_text(g)}")
    parts.append(f"# judging: {cfg.shards} shards after the build job, judgelm-judge:{cfg.run}\n{gpu_plan_text(cfg)}")
    return "\n".join(parts)


def judging_records(cfg, runs: list[RunDir], planning: bool = False) -> Loaded:
    ev = cfg.evaluate
    data = evaluation_answers(list(ev.answers), runs, planning)
    if cfg.prompt.turns:  # judge only the first turns of the conversations
        data = data.first_turns(cfg.prompt.turns)
    return Loaded(records=pair_records(data, ev.pairing, ev.baseline, model_ids(runs) + list(ev.models), ev.budget,
                                       ev.seed))


def evaluation_attrs(cfg, runs: list[RunDir]) -> dict[str, Any]:
    ev = cfg.evaluate
    tiny = [AnswerStore(r.answer_store).attrs["model_id"] for r in runs
            if is_tiny_judge(AnswerStore(r.answer_store).attrs["model"])]
    return {"evaluation": {"pairing": ev.pairing, "baseline": "" if ev.pairing == "all-pairs" else ev.baseline},
            "tiny_models": tiny, **answer_counts(runs)}


def create_dag(cfg, given: set[str]) -> tuple[RunDir, list[tuple[RunDir, GenerateLaunchConfig]]]:
    """The evaluation's run directory: its generation runs and its judging config, sized from the evaluation's
    shape. Every model is checked before anything is written; a failure part-way removes the directory."""
    apply_question_set(cfg, given)
    cfg.engine.validate()
    gens = [generation_config(cfg, p) for p in cfg.evaluate.generate]
    ids = [g.model_id for g in gens]
    if len(set(ids)) < len(ids):
        raise ConfigError(f"evaluate.generate: two models would file their answers under one name ({ids}); give "
                          f"each model directory its own name")
    planned = [plan_generation(g) for g in gens]
    with new_run(cfg.runs_dir, cfg.run) as rd:
        runs = [(create_generation(p, to_yaml(p.cfg)), p.cfg) for p in planned]
        plan_run(cfg, judging_records(cfg, [r for r, _ in runs], planning=True))  # sizes cfg.shards and chunks
        rd.config.write_text(to_yaml(cfg))
    return rd, runs


def build_judging(run_dir: str | Path) -> str:
    """The build step: export every generation run (naming the shards of one that is incomplete), then write the
    judging run's store from the answers, with exactly the shape it was sized for. Does nothing the second time."""
    from launch.evaluate import EvaluateLaunchConfig, reference_rows, write_reference

    rd = RunDir(Path(run_dir))
    if rd.store.exists():
        return f"run {rd.name}: the judging run is already built"
    cfg = load_saved(EvaluateLaunchConfig, rd.config)
    runs = generation_runs(rd)
    for r in runs:
        export_run(r.root)
    sized = (cfg.shards, cfg.store.chunk_units)
    planned = plan_run(cfg, judging_records(cfg, runs))
    if (cfg.shards, cfg.store.chunk_units) != sized:
        raise RuntimeError(f"the answers make {planned.n_units} units, which is not the shape the judging array was "
                           f"submitted for ({sized[0]} shards of chunks of {sized[1]})")
    try:
        write_store(rd, planned, evaluation_attrs(cfg, runs))
        write_reference(rd, cfg.evaluate, reference_rows(cfg.evaluate, planned.loaded))
    except BaseException:
        shutil.rmtree(rd.store, ignore_errors=True)  # a store that exists is one the judging array can use
        raise
    counts = answer_counts(runs)
    return (f"run {cfg.run}: {len(planned.loaded.records)} comparisons, {planned.n_units} units to judge; "
            f"{counts['answers_from_cache']} of {counts['answers']} answers from the answer cache")


# --- running the DAG ----------------------------------------------------------------------------------------------

@dataclass
class Dag:
    rd: RunDir
    cfg: Any  # EvaluateLaunchConfig
    generations: list[Submission]
    build: Any  # the build job (Slurm)
    judging: Submission


def run_dag(rd: RunDir, cfg, todo: list[tuple[RunDir, GenerateLaunchConfig, list[int]]], started: float,
            busy: list[str] = ()) -> int:
    """Generate what ``todo`` lists (per generation run: its config and the shards to run), build the judging run,
    judge and merge: on Slurm as dependent jobs (returning at once unless ``wait``), locally one after the other.
    ``busy``: generation jobs of an earlier submission still queued or running, which the build waits for too."""
    if cfg.cluster.executor == "slurm":
        dag = submit_dag(rd, cfg, todo, busy)
        print_dag(dag)
        return follow_dag(dag, started) if cfg.wait else 0
    for grd, gcfg, shards in todo:
        if shards:
            sub = submit(grd, gcfg, shards, kind=GENERATE)
            rc = follow_to_end(sub, started)
            if rc:
                print(f"error: generation of {gcfg.model_id} did not finish (run {gcfg.run}); nothing was judged. "
                      f"Continue with: make resubmit RUN={cfg.run}", file=sys.stderr)
                return rc
    print(build_judging(rd.root), flush=True)
    rc = follow_to_end(submit(rd, cfg, judging_shards(rd, cfg)), started)
    print_leaderboard(rd)
    return rc


def judging_shards(rd: RunDir, cfg) -> list[int]:
    from judgelm.judging.run import incomplete_shards

    return incomplete_shards(rd, cfg.shards) if rd.store.exists() else list(range(cfg.shards))


def print_leaderboard(rd: RunDir) -> None:
    if (rd.root / LEADERBOARD_MD).exists():
        print("\n" + (rd.root / LEADERBOARD_MD).read_text(), end="", flush=True)


def submit_dag(rd: RunDir, cfg, todo: list[tuple[RunDir, GenerateLaunchConfig, list[int]]],
               busy: list[str] = ()) -> Dag:
    from launch.tasks import build_task

    chdir = snapshot_code(rd.root / "code")  # one frozen copy of the code for every job of the DAG
    gens = [submit(grd, gcfg, shards, kind=GENERATE, chdir=chdir, closing=False) for grd, gcfg, shards in todo
            if shards]
    after = [s.array_job_id for s in gens] + list(busy)
    models = ",".join(model_ids(generation_runs(rd)))
    ex = make_executor(merge_cluster(cfg.cluster), rd.logs, f"judgelm-build:{cfg.run}",
                       comment=f"run={cfg.run} models={models} builds the judging run from their answers",
                       chdir=chdir, dependency="afterok:" + ":".join(after) if after else None)
    build = ex.submit(build_task, str(rd.root))
    record_submission(rd, "build", "slurm", [build.job_id])
    judging = submit(rd, cfg, judging_shards(rd, cfg), after=f"afterok:{build.job_id}", chdir=chdir)
    return Dag(rd, cfg, gens, build, judging)


def print_dag(dag: Dag) -> None:
    for s in dag.generations:
        print(f"generation of {s.cfg.model_id}: array job {s.array_job_id} (shards {s.shards}, name "
              f"judgelm-generate:{s.cfg.run})")
    print(f"build job {dag.build.job_id} (judgelm-build:{dag.cfg.run}, afterok on the generation arrays)")
    print_how_to_follow(dag.judging)


def follow_dag(dag: Dag, started: float) -> int:
    """Follow each generation array, then the build job, then the judging run, to the end."""
    for s in dag.generations:
        follow(s)
    blocked = blocked_generations(dag.rd)
    if blocked:
        print(f"error: {blocked}", file=sys.stderr)
        return 1
    while not dag.build.done():  # its result file is there (sacct may still say RUNNING)
        time.sleep(5)
    if dag.build.exception() is not None:
        print(f"error: build job {dag.build.job_id} failed (log: {dag.build.paths.stdout}): "
              f"{dag.build.exception()}; continue with: make resubmit RUN={dag.cfg.run}", file=sys.stderr)
        return 1
    rc = follow_to_end(dag.judging, started)
    print_leaderboard(dag.rd)
    return rc


# --- continuing a DAG ---------------------------------------------------------------------------------------------

def resubmit_dag(rd: RunDir, overrides: list[str]) -> int:
    """Continue an evaluation from where it stopped: the generation shards with answers left (not those still
    queued or running), then, unless the judging run is built already, a new build, judging array and merge after
    them (the old ones, left waiting on a dependency that can never be satisfied, are cancelled first)."""
    from launch.evaluate import EvaluateLaunchConfig
    from launch.resubmit import shards_to_run

    started = time.time()
    cfg = saved_judge_config(rd, overrides, EvaluateLaunchConfig)
    todo, busy = [], []
    for grd in generation_runs(rd):
        gcfg = saved_judge_config(grd, overrides, GenerateLaunchConfig)
        shards, still = shards_to_run(grd, gcfg.shards, AnswerStore(grd.answer_store))
        todo.append((grd, gcfg, shards))
        busy += still
    if cfg.cluster.executor == "slurm":
        waiting = active(dag_jobs(rd))
        reasons = pending_reasons(waiting)
        if waiting and not any(shards for _, _, shards in todo) and NEVER not in reasons.values():
            print(f"run {cfg.run}: its jobs {waiting} are still queued or running; nothing to resubmit")
            return 0
        if waiting:
            log.info("cancelling jobs %s, which wait on generation jobs that ended without their answers", waiting)
            subprocess.run(["scancel", *sorted({j.split("_")[0] for j in waiting})], check=False)
    log.info("run %s: generating %s, then building and judging", cfg.run,
             {g.model_id: s for _, g, s in todo if s} or "nothing")
    return run_dag(rd, cfg, todo, started, busy)
