"""The typed config of a generation run (``configs/generate.yaml``), as the library sees it.

Everything that changes an answer is here and saved in ``runs/<run>/config.yaml``: the model, the question set,
the engine (backend, ``max_new_tokens``, ``temperature``, ``top_k``/``top_p``, ``seed``, ...) and the settings of
``generate`` below. The launcher adds the cluster profile on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from judgelm.config import ConfigError, config_hash, load_saved
from judgelm.inference.config import EngineConfig, ModelConfig
from judgelm.judging.config import StoreConfig
from judgelm.rundir import RunDir


@dataclass
class QuestionsConfig:
    """Which questions are answered."""

    source: str = "alpaca_eval"
    """A question set by name (``alpaca_eval``, ``mt_bench``, ``arena-hard``, ``arena-hard-v0.1``:
    ``judgelm.generation.questions.QUESTION_SETS``) or a
    file: JSONL in FastChat's ``question.jsonl`` layout (``question_id``, ``turns``, optional ``category``), or rows
    with ``instruction`` (AlpacaEval's layout)."""
    limit: int = 0
    """Answer only this many questions, spread evenly over the set (0: all)."""


@dataclass
class GenerateConfig:
    """How answers are asked for and kept, beyond the engine's decoding settings."""

    n: int = 1
    """Answers per question (FastChat's ``num_choices``), each sampled with its own seed; the first is judged."""
    category_temperatures: bool = True
    """Sample each question at the temperature its benchmark publishes for its category (MT-Bench: FastChat's table,
    writing/roleplay 0.7, extraction/math/coding/reasoning 0.0, stem/humanities 0.1); ``engine.temperature``
    (greedy by default) for every other question and set."""
    chat_template: str = ""
    """Empty: the model's own chat template (a tokenizer without one is refused). Otherwise a Jinja file, or the
    name of one in ``configs/chat_templates/`` (``chatml``, ``plain``)."""
    system_prompt: str = ""
    """The system message of every conversation; empty: the benchmark's own where it has one, else none (the
    model's template decides)."""
    checklists: bool = False
    """Write RocketEval checklists instead of answers (``make checklists``): each question is replaced by
    RocketEval's checklist-creation prompt with its reference answer, and the export parses the items into
    ``checklists.jsonl`` (``judgelm.generation.checklists``)."""
    keep_thinking: bool = False
    """Show a reasoning model's thinking (``<think>…</think>`` in its text, or a server's reasoning field) to the
    judge too. By default it is stored apart (``reasoning`` in the store) and only the answer after it is judged."""


ANSWER_CHUNK = 256
"""Default largest chunk of answers: a chunk is one engine call per turn, and answers of hundreds of tokens are
decode-bound, so the rows in flight set the speed. The bare ``make generate`` (805 AlpacaEval answers by the tiny
chat model, 4 shards, 2 cores) took 200 s with chunks of 16, 65 s with 128 and 54 s with 256 (chunks of 202); the
answers were the same wherever compared (16 and 128 on 256 questions, 128 and 256 on all). A requeued shard
finishes its chunk in the signal's lead (``cluster.signal_delay_s``) or redoes it: lower it where a chunk takes the
model longer than that."""


@dataclass
class GenerationConfig:
    """A generation run."""

    run: str = ""
    """Run name; the run lives in ``<runs_dir>/<run>/``. Empty: ``generate-<date>-<time>``."""
    runs_dir: str = "runs"
    """Where run directories are created; the answer cache is ``<runs_dir>/.answer-cache/``."""
    shards: int = 4
    """Number of shards (array tasks); each owns a contiguous run of chunks."""
    allow_partial: bool = False
    """Export the answers of an incomplete run, leaving out the questions without one."""
    answer_cache: bool = True
    """Reuse answers that any run next to this one already generated with the same model, settings and prompt, and
    add this run's (``judgelm.generation.answer_cache``)."""
    model_id: str = ""
    """The name the answers carry (FastChat's ``model_id``, AlpacaEval's ``generator``); empty: the model
    directory's name."""
    questions: QuestionsConfig = field(default_factory=QuestionsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(mode="full"))
    """The engine and its decoding settings. ``engine.max_new_tokens=0`` takes the question set's (AlpacaEval 2048,
    MT-Bench 1024, as their reference scripts; half the model's context where the set's leaves no room for a prompt);
    ``engine.temperature`` is the temperature where the benchmark publishes none (0: greedy)."""
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    store: StoreConfig = field(default_factory=lambda: StoreConfig(chunk_units=ANSWER_CHUNK))
    """The answer store; ``store.chunk_units`` is the largest chunk (see ``ANSWER_CHUNK``)."""

    def fingerprint(self) -> str:
        """Hash of the library's fields only (not where the run executes), shown in Slurm comments."""
        return config_hash({f.name: getattr(self, f.name) for f in fields(GenerationConfig)})

    def validate(self) -> None:
        """Refuse, with the key to change, settings that cannot make answers."""
        e = self.engine
        e.validate()
        if e.mode != "full":
            raise ConfigError(f"engine.mode={e.mode}: answers are generated to their end (EOS or max_new_tokens); "
                              "use engine.mode=full")
        if e.samples != 1 or e.parse_retries or e.logprobs_topk:
            raise ConfigError("engine.samples, engine.parse_retries and engine.logprobs_topk are judging settings; "
                              "for several answers per question use generate.n")
        if self.generate.n < 1:
            raise ConfigError(f"generate.n={self.generate.n}: at least 1 answer per question")
        if self.shards < 1 or self.store.chunk_units < 1 or self.questions.limit < 0:
            raise ConfigError("shards and store.chunk_units must be at least 1, questions.limit at least 0")


def model_id_of(path: str) -> str:
    """The name a model's answers carry by default: its directory's (or hub id's) last part."""
    return Path(path.rstrip("/")).name


def load_generation_config(run_dir: str | Path) -> GenerationConfig:
    """The library's part of a generation run's saved ``config.yaml``."""
    return load_saved(GenerationConfig, RunDir(Path(run_dir)).config)
