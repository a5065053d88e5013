"""Creating a generation run: check the model and its chat template, load the questions, resolve every setting,
create the answer store and take from the answer cache every chunk it already holds.

As for judging runs, everything is decided before anything is submitted, so a mistake costs one line at the prompt,
and the run directory either comes out whole or not at all.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from judgelm.config import ConfigError
from judgelm.generation.answer_cache import open_answer_cache
from judgelm.generation.chat import check_template, template_text
from judgelm.generation.checklists import TASK, checklist_questions, write_sources
from judgelm.generation.config import GenerationConfig, model_id_of
from judgelm.generation.generate import CacheMiss, CacheOnly, TurnSettings, answer_chunk
from judgelm.generation.questions import Question, QuestionSet, load_questions, question_set
from judgelm.generation.store import AnswerStore
from judgelm.inference.config import context_length
from judgelm.judging.run import check_model, check_shard_python, local_model
from judgelm.judging.store import plan_chunks
from judgelm.rundir import RunDir, new_run

log = logging.getLogger("judgelm.generation.run")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TEMPLATE_FILE = "chat_template.jinja"  # a named template, copied into the run so its jobs never read the checkout


@dataclass
class PlannedGeneration:
    cfg: GenerationConfig
    qset: QuestionSet
    questions: list[Question]
    temperatures: list[float]
    template: str | None = None  # a named chat template's text, copied into the run
    sources: list[dict] | None = None  # a checklist run: the question each prompt was made from

    @property
    def n_units(self) -> int:
        return len(self.questions) * self.cfg.generate.n


def turn_settings(cfg: GenerationConfig) -> TurnSettings:
    g = cfg.generate
    return TurnSettings(cfg.engine.max_new_tokens, template_text(g.chat_template), g.system_prompt, g.keep_thinking)


def plan_generation(cfg: GenerationConfig) -> PlannedGeneration:
    """Check and resolve ``cfg`` (model, template, question set, max new tokens, system prompt, temperatures, chunks
    and shards); ``cfg`` then holds everything the shards need."""
    cfg.validate()
    qset = question_set(cfg.questions.source)
    cfg.questions.source = qset.name
    check_shard_python(cfg.engine)
    cfg.model_id = cfg.model_id or model_id_of(cfg.model.path)
    if not _MODEL_ID.match(cfg.model_id):
        raise ConfigError(f"model_id={cfg.model_id}: answers are filed under it; use letters, digits, '.', '_' "
                          f"and '-'")
    cfg.model.path = local_model(cfg.model.path)
    check_model(cfg.model.path, weights=cfg.engine.backend != "openai")
    template = template_text(cfg.generate.chat_template)
    check_template(template, cfg.model.path)
    if template is not None:
        cfg.generate.chat_template = str(Path(cfg.runs_dir).resolve() / cfg.run / TEMPLATE_FILE)
    given = cfg.engine.max_new_tokens
    cfg.engine.max_new_tokens = given or qset.max_new_tokens
    context = context_length(cfg.model, cfg.engine)
    if cfg.engine.max_new_tokens >= context and given:
        raise ConfigError(f"engine.max_new_tokens={given} leaves no room for a prompt in {cfg.model_id}'s "
                          f"{context}-token context; give a smaller engine.max_new_tokens")
    if cfg.engine.max_new_tokens >= context:  # the set's budget, made for long-context models: half the context
        cfg.engine.max_new_tokens = context // 2
        log.warning("%s's %d new tokens leave no room for a prompt in %s's %d-token context: %d new tokens instead "
                    "(engine.max_new_tokens=N to choose)", qset.name, qset.max_new_tokens, cfg.model_id, context,
                    cfg.engine.max_new_tokens)
    checklists = cfg.generate.checklists
    # RocketEval sends its checklist prompt alone, at one temperature: the set's answer settings do not apply.
    cfg.generate.system_prompt = cfg.generate.system_prompt or ("" if checklists else qset.system_prompt)
    questions, sources = load_questions(qset, cfg.questions.limit), None
    if checklists:
        questions, sources = checklist_questions(qset, questions)
        if not questions:
            raise ConfigError(f"questions.source={qset.name}: no question has a reference answer to make a "
                              f"checklist with; give a file whose questions have a 'reference'")
    by_category = qset.temperatures if cfg.generate.category_temperatures and not checklists else {}
    temperatures = [by_category.get(q.category, cfg.engine.temperature) for q in questions]
    chunk, shards = plan_chunks(len(questions) * cfg.generate.n, cfg.shards, cfg.store.chunk_units)
    if shards < cfg.shards:
        log.warning("%d answers fill only %d shards, not %d", len(questions) * cfg.generate.n, shards, cfg.shards)
    cfg.store.chunk_units, cfg.shards = chunk, shards
    return PlannedGeneration(cfg, qset, questions, temperatures, template, sources)


def create_generation(planned: PlannedGeneration, saved_config: str) -> RunDir:
    """Write the run directory (logs, the answer store, ``config.yaml``) and commit every chunk the answer cache
    already holds. A failure part-way removes the directory."""
    cfg = planned.cfg
    with new_run(cfg.runs_dir, cfg.run) as rd:
        if planned.template is not None:
            (rd.root / TEMPLATE_FILE).write_text(planned.template)
        AnswerStore.create(rd.answer_store, planned.questions, planned.temperatures, cfg.generate.n,
                           cfg.store.chunk_units, attrs={
                               "run": cfg.run, "model": cfg.model.path, "model_id": cfg.model_id,
                               "questions": planned.qset.name, "answer_format": planned.qset.answer_format,
                               "task": TASK if planned.sources is not None else "answers",
                               "n_shards": cfg.shards, "config_hash": cfg.fingerprint(), "created": time.time()})
        if planned.sources is not None:
            write_sources(rd.root, planned.sources)
        rd.config.write_text(saved_config)
        filled = fill_from_cache(rd, cfg)
    log.info("run %s: %s, %d questions × %d answers in %d chunks of %d, %d shards; %d chunks from the answer cache",
             cfg.run, cfg.model_id, len(planned.questions), cfg.generate.n,
             -(-planned.n_units // cfg.store.chunk_units), cfg.store.chunk_units, cfg.shards, filled)
    return rd


def fill_from_cache(rd: RunDir, cfg: GenerationConfig) -> int:
    """Commit every chunk whose answers the cache holds whole (attempt -1); returns how many."""
    cache = open_answer_cache(cfg)
    if cache is None or not len(cache.cache):  # nothing to find: no tokenizer to load (seconds of imports)
        return 0
    from judgelm.inference.models import load_tokenizer

    store = AnswerStore(rd.answer_store, mode="r+")
    engine = CacheOnly(load_tokenizer(cfg.model.path), context_length(cfg.model, cfg.engine), cfg.engine)
    settings, filled = turn_settings(cfg), 0
    for c in range(store.n_chunks):
        try:
            answers = answer_chunk(store.chunk_inputs(c), store.n_turns, engine, settings, cache)
        except CacheMiss:
            continue
        store.write_chunk(c, answers, attempt=-1)
        filled += 1
    return filled


def incomplete_shards(rd: RunDir, n_shards: int) -> list[int]:
    return AnswerStore(rd.answer_store).incomplete_shards(n_shards)
