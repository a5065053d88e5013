"""The answer store: one Zarr group per generation run holding its questions, its unit plan and every answer.

Layout (``answers.zarr``):

- ``questions/*`` (one row per question): id (as text, ``int_id`` saying whether it was a number), turns, number of
  turns, category, reference answer per turn, and the temperature it is sampled at (resolved at creation).
- ``units/*`` (one row per answer to make): the question's row and the sample index (``generate.n``). Units of one
  question are adjacent; questions are spread over the plan as judging records are
  (``judgelm.judging.units.spread_order``), so every shard gets its share of every category.
- ``answers/*`` (one row per unit, a column per turn where it says so): the text shown to a judge, the thinking kept
  apart (``reasoning``), how the turn ended (``finish``: ``STOP``, ``LENGTH``, ``TOO_LONG``; ``NOT_ASKED`` for turns
  the question does not have), prompt and new token counts, whether it came from the answer cache (``cached``), the
  attempt that committed it, when (``tstamp``), and ``done``.

Concurrency is the verdict store's rule (``judgelm.judging.store``): a shard owns whole chunks of the unit axis and
writes a chunk in one go, ``done`` last, so a committed chunk is whole and a requeued shard skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from judgelm.generation.questions import Question
from judgelm.judging.store import ChunkLayout
from judgelm.judging.units import spread_order

FORMAT_VERSION = 1
NOT_ASKED, STOP, LENGTH, TOO_LONG = -1, 0, 1, 2
FINISH_NAMES = {STOP: "stop", LENGTH: "length", TOO_LONG: "prompt_too_long"}
_QUESTION_CHUNK = 4096


@dataclass(frozen=True)
class ChunkAnswers:
    """What a shard writes for one chunk: one row per unit, one column per turn."""

    text: list[list[str]]
    reasoning: list[list[str]]
    finish: np.ndarray  # int8 (n, turns)
    prompt_tokens: np.ndarray  # int32 (n, turns)
    new_tokens: np.ndarray  # int32 (n, turns)
    cached: np.ndarray  # bool (n, turns)
    tstamp: np.ndarray  # float64 (n,)


def _text(values: list) -> np.ndarray:
    return np.array(values, dtype=object)


def plan_answers(n_questions: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """(question row, sample) per unit: every question's samples adjacent, questions spread over the plan."""
    question = np.repeat(np.arange(n_questions, dtype=np.int32), samples)
    sample = np.tile(np.arange(samples, dtype=np.int16), n_questions)
    idx = spread_order(question)
    return question[idx], sample[idx]


class AnswerStore(ChunkLayout):
    """Open an existing store; ``create`` makes a new one."""

    def __init__(self, path: str | Path, mode: str = "r"):
        self.path = Path(path)
        if not (self.path / "zarr.json").exists():
            raise FileNotFoundError(f"no answer store at {self.path}")
        self.group = zarr.open_group(str(self.path), mode=mode)
        self.attrs: dict[str, Any] = dict(self.group.attrs)
        if self.attrs.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{self.path}: answer store format {self.attrs.get('format_version')} is not "
                             f"{FORMAT_VERSION}")
        self.n_units: int = self.attrs["n_units"]
        self.n_questions: int = self.attrs["n_questions"]
        self.n_turns: int = self.attrs["n_turns"]
        self.chunk_units: int = self.attrs["chunk_units"]
        self.n_chunks: int = self.attrs["n_chunks"]

    @classmethod
    def create(cls, path: str | Path, questions: list[Question], temperatures: list[float], samples: int,
               chunk_units: int, attrs: dict[str, Any] | None = None) -> AnswerStore:
        """Write a new store for ``questions`` (``samples`` answers each); refuses to overwrite one."""
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} already exists; a run's store is created once")
        n_q, turns = len(questions), max(len(q.turns) for q in questions)
        g = zarr.open_group(str(path), mode="w-")

        def put(name: str, data: np.ndarray, chunks: int, dtype: Any, fill: Any) -> None:
            arr = g.create_array(name, shape=data.shape, chunks=(chunks,) + data.shape[1:], dtype=dtype,
                                 fill_value=fill)
            if data.size:
                arr[...] = data

        def padded(rows: list[tuple[str, ...]]) -> np.ndarray:
            return _text([list(r) + [""] * (turns - len(r)) for r in rows]).reshape(n_q, turns)

        qc = min(_QUESTION_CHUNK, n_q)
        put("questions/question_id", _text([str(q.question_id) for q in questions]), qc, str, "")
        put("questions/int_id", np.array([isinstance(q.question_id, int) for q in questions]), qc, bool, False)
        put("questions/turns", padded([q.turns for q in questions]), qc, str, "")
        put("questions/n_turns", np.array([len(q.turns) for q in questions], dtype=np.int8), qc, "int8", 1)
        put("questions/category", _text([q.category for q in questions]), qc, str, "")
        put("questions/references", padded([q.references for q in questions]), qc, str, "")
        put("questions/temperature", np.asarray(temperatures, dtype=np.float32), qc, "float32", 0.0)
        question, sample = plan_answers(n_q, samples)
        n_units = len(question)
        put("units/question", question, chunk_units, "int32", -1)
        put("units/sample", sample, chunk_units, "int16", 0)
        for name, dtype, fill in (("text", str, ""), ("reasoning", str, ""), ("finish", "int8", NOT_ASKED),
                                  ("prompt_tokens", "int32", 0), ("new_tokens", "int32", 0), ("cached", bool, False)):
            g.create_array(f"answers/{name}", shape=(n_units, turns), chunks=(chunk_units, turns), dtype=dtype,
                           fill_value=fill)
        for name, dtype, fill in (("attempt", "int16", -1), ("tstamp", "float64", 0.0), ("done", bool, False)):
            g.create_array(f"answers/{name}", shape=(n_units,), chunks=(chunk_units,), dtype=dtype, fill_value=fill)
        g.attrs.update({**(attrs or {}), "format_version": FORMAT_VERSION, "n_units": n_units, "n_questions": n_q,
                        "n_turns": turns, "samples": samples, "chunk_units": chunk_units,
                        "n_chunks": max(1, -(-n_units // chunk_units))})
        return cls(path, mode="r+")

    # --- reading ----------------------------------------------------------------------------------------------

    def questions(self, name: str) -> np.ndarray:
        """A per-question column (``question_id``, ``turns``, ``category``, ...), whole."""
        return self.group[f"questions/{name}"][:]

    def units(self, name: str) -> np.ndarray:
        return self.group[f"units/{name}"][:]

    def answers(self, name: str) -> np.ndarray:
        """A per-unit answer column (``text``, ``reasoning``, ``finish``, ``cached``, ...), whole."""
        return self.group[f"answers/{name}"][:]

    def question_ids(self) -> list[int | str]:
        """The questions' ids as the source gave them (numbers stay numbers)."""
        return [int(q) if is_int else str(q) for q, is_int in zip(self.questions("question_id"),
                                                                   self.questions("int_id"))]

    def done(self) -> np.ndarray:
        return self.answers("done")

    def chunk_done(self, chunk: int) -> bool:
        return bool(self.group["answers/done"][self.chunk_slice(chunk)].all())

    def chunk_inputs(self, chunk: int) -> dict[str, Any]:
        """What one chunk's conversations are made of: per unit its question's id, turns, temperature and sample."""
        sl = self.chunk_slice(chunk)
        q = self.group["units/question"][sl]
        ids = self.question_ids()
        return {"unit": np.arange(sl.start, sl.stop), "question_id": [ids[i] for i in q],
                "sample": self.group["units/sample"][sl], "turns": self.questions("turns")[q].tolist(),
                "n_turns": self.questions("n_turns")[q], "temperature": self.questions("temperature")[q]}

    # --- writing ----------------------------------------------------------------------------------------------

    def write_chunk(self, chunk: int, a: ChunkAnswers, attempt: int) -> None:
        """Write one whole chunk, ``done`` last: it is the commit marker."""
        sl = self.chunk_slice(chunk)
        n = sl.stop - sl.start
        if a.finish.shape != (n, self.n_turns) or len(a.text) != n:
            raise ValueError(f"chunk {chunk} holds {n} units of {self.n_turns} turns; got {a.finish.shape}")
        g = self.group
        g["answers/text"][sl] = _text(a.text)
        g["answers/reasoning"][sl] = _text(a.reasoning)
        g["answers/finish"][sl] = a.finish.astype(np.int8)
        g["answers/prompt_tokens"][sl] = a.prompt_tokens.astype(np.int32)
        g["answers/new_tokens"][sl] = a.new_tokens.astype(np.int32)
        g["answers/cached"][sl] = a.cached.astype(bool)
        g["answers/tstamp"][sl] = a.tstamp.astype(np.float64)
        g["answers/attempt"][sl] = np.full(n, attempt, dtype=np.int16)
        g["answers/done"][sl] = np.ones(n, dtype=bool)

    # --- counts -------------------------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Turns answered, of them from the answer cache, and how they ended, over the committed units."""
        done = self.done()
        finish, cached = self.answers("finish")[done], self.answers("cached")[done]
        asked = finish != NOT_ASKED
        return {"units": int(done.sum()), "turns": int(asked.sum()), "from_cache": int((cached & asked).sum()),
                **{name: int((finish == code).sum()) for code, name in FINISH_NAMES.items()}}
