"""The verdict store: one Zarr group per run holding the inputs, the unit plan and every verdict.

Layout (``verdicts.zarr``):

- ``records/*`` (one row per record): question, answers, reference, ground truth, subset, category and the
  generator of each answer (``models``, empty outside model evaluations), so a
  shard needs nothing but the store and a queued run cannot be changed by editing the data file afterwards.
  These hold a conversation's first turn; a store with multi-turn records (attribute ``n_turns`` > 1) adds the
  turns after the first in ``records/later_*`` (question, answers, reference, answer lengths; one column per later
  turn, empty past a record's last).
- ``units/*`` (one row per unit): record index, answer order, with-reference flag, turn (0: the first; absent in
  stores made before multi-turn units, where every unit judges the first turn).
- ``verdicts/*`` (one row per unit): scores as the judge wrote them (in the order it saw the answers; NaN when
  they did not parse), status, generated text, token counts, the attempt that judged it, whether the verdict came
  from the verdict cache (``cached``, ``judgelm.judging.verdict_cache``), and ``done``.
  Optional arrays declared at creation: score-token log-probabilities (``top_ids``, ``top_logprobs``) and the draws
  beyond the primary verdict (``sample_*``, ``retry_*``: ``draw_arrays``).
- ``judges/<name>/*`` (optional, one row per unit): the same verdict arrays for each further judge of a panel
  (``add_judge``, ``judge(name)``); the run's own judge stays in ``verdicts/``.

Concurrency rule: a shard owns whole chunks of the unit axis and writes a chunk in one go, ``done`` last
(``commit_chunk``). Writers that share a chunk silently lose rows in Zarr (read-modify-write), and a chunk file is
replaced atomically, so "done is True" means every verdict array of that chunk was written. A killed shard leaves
at most its current chunk unfinished, and re-running it skips every chunk whose ``done`` is all True.

Integrity: every chunk file carries a CRC32C of its bytes (Zarr's ``crc32c`` codec, declared on every array at
creation, so the checksum is written with the chunk, before ``done``), and every committed chunk has a file in
every verdict array, fill values included, so a lost file is seen too. Reading verifies: a damaged chunk raises
``DamagedStore`` naming the array, the chunk, its units and the shard that owns it, never a number computed from
it; ``verify`` lists every damaged chunk; ``repair`` turns damaged chunks back into "not judged", so running their
shards again re-judges exactly those units. Stores made before checksums (no ``checksums`` attribute) still read,
and undecodable chunks in them are still found.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from judgelm.data.records import Record, Turn
from judgelm.judging.units import UnitPlan
from judgelm.rundir import Fault

FORMAT_VERSION = 1
CHECKSUMS = "crc32c"  # the ``checksums`` attribute of stores whose chunks carry one (and whose commits write all)
NO_LABEL = 2  # int8 sentinel in records/label*: the record has no ground truth for that reference mode
_RECORD_CHUNK = 4096  # records' texts: a shard decodes the chunks around its own records
# Records' short columns (labels, scores, lengths, names) are read whole by the merge, window by window; zarr's cost
# is per chunk (0.7 ms each here), so 4,096-row chunks made a 10M-unit merge spend 6 s reading them.
_RECORD_META_CHUNK = 1 << 16
# Optional verdict arrays an engine can fill: the top-k log-probabilities at the first generated positions.
TOP_IDS, TOP_LOGPROBS = "top_ids", "top_logprobs"
ExtraSchema = dict[str, tuple[tuple[int, ...], str, Any]]  # name: (trailing shape, dtype, fill)


def logprob_arrays(steps: int, k: int) -> ExtraSchema:
    """The extra verdict arrays of a run that keeps the top-``k`` log-probabilities of ``steps`` positions (none
    when ``k`` is 0): declared here once, for the engines that fill them and the merge that reads them."""
    if not k:
        return {}
    return {TOP_IDS: ((steps, k), "int32", 0), TOP_LOGPROBS: ((steps, k), "float16", float("nan"))}
_JUDGE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def plan_chunks(n_units: int, shards: int, chunk_units: int) -> tuple[int, int]:
    """``(chunk size, shards)`` so that every shard owns chunks and shards differ by at most one chunk.

    Chunks are at most ``chunk_units`` and every shard gets ``k`` or ``k - 1`` of them, ``k`` as small as the size
    limit allows; with fewer units than shards, the number of shards shrinks instead of leaving tasks idle.
    """
    if shards < 1 or chunk_units < 1:
        raise ValueError(f"shards and chunk_units must be at least 1, got {shards} and {chunk_units}")
    per_shard = -(-n_units // (shards * chunk_units))  # chunks per shard
    chunk = max(1, -(-n_units // (shards * per_shard)))
    return chunk, min(shards, max(1, -(-n_units // chunk)))


PREFERENCE = "preference"  # optional verdict array: P(slot 2 better) as the judge gave it, NaN where it gave none
NOT_ASKED = -1  # status of a sample or re-ask that was never drawn (int8 fill of the draw arrays)


def draw_arrays(n_scores: int, samples: int, retries: int) -> dict[str, tuple[tuple[int, ...], str, Any]]:
    """The ``extra_arrays`` that hold every draw beyond the primary verdict (``judgelm.judging.resample``): all
    ``samples`` verdicts of each unit (``sample_*``, sample 0 a copy of the primary) when there are several, and the
    ``retries`` re-asks of a unit whose primary verdict did not parse (``retry_*``)."""
    out: dict[str, tuple[tuple[int, ...], str, Any]] = {}
    for prefix, k in (("sample", samples if samples > 1 else 0), ("retry", retries)):
        if k:
            out.update({f"{prefix}_scores": ((k, n_scores), "float32", np.nan),
                        f"{prefix}_status": ((k,), "int8", NOT_ASKED), f"{prefix}_text": ((k,), str, "")})
    return out


def _text_array(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=object)


def _declare_verdicts(g: zarr.Group, prefix: str, n_units: int, chunk_units: int, n_scores: int,
                      extra_arrays: dict[str, tuple[tuple[int, ...], str, Any]] | None, checksums: bool = True) -> None:
    """The empty per-unit verdict arrays of one judge under ``prefix``, chunked along the unit axis."""
    uc = (chunk_units,)
    for name, shape, dtype, fill in (("scores", (n_scores,), "float32", np.nan), ("status", (), "int8", -1),
                                     ("text", (), str, ""), ("prompt_tokens", (), "int32", 0),
                                     ("new_tokens", (), "int32", 0), ("attempt", (), "int16", -1),
                                     ("truncated", (), bool, False), ("cached", (), bool, False),
                                     ("done", (), bool, False),
                                     *((n, tuple(sh), dt, f) for n, (sh, dt, f) in (extra_arrays or {}).items())):
        create_array(g, f"{prefix}/{name}", (n_units,) + shape, uc + shape, dtype, fill, checksums)


def create_array(g: zarr.Group, name: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any,
                 fill: Any, checksums: bool = True) -> zarr.Array:
    """An array whose every chunk file carries a CRC32C of its compressed bytes, checked whenever it is read.

    Every store of the project creates its arrays here (answer stores too), so damage is always detectable.
    ``checksums=False`` makes an array as stores made before checksums have them (to measure what they cost)."""
    return g.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                          compressors=[ZstdCodec(level=0)] + ([Crc32cCodec()] if checksums else []))


@contextmanager
def _every_chunk_file() -> Iterator[None]:
    """Zarr skips writing a chunk that holds only fill values; a commit writes them all, so that a committed chunk
    without its file is known to be damaged rather than read as "never judged"."""
    with zarr.config.set({"array.write_empty_chunks": True}):
        yield


def commit_chunk(g: zarr.Group, prefix: str, sl: slice, arrays: dict[str, np.ndarray], done: str = "done") -> None:
    """The one way a chunk is committed, for every store: each array's chunk written whole (each file with its
    checksum), then ``done``, the commit marker, last."""
    try:
        with _every_chunk_file():
            for name, values in arrays.items():
                g[f"{prefix}/{name}"][sl] = values
            g[f"{prefix}/{done}"][sl] = np.ones(sl.stop - sl.start, dtype=bool)
    except OSError as e:  # a failed write (a full disk) names no file: name what was being written
        if e.filename is None:
            e.filename = str(Path(g.store.root) / prefix) if hasattr(g.store, "root") else prefix
        raise


def _put_later_turns(put: Any, records: list[Record], n_turns: int, n_answers: int, rc: tuple[int]) -> None:
    """The turns after the first of multi-turn records, padded with empty turns past a record's last."""
    n, later = len(records), n_turns - 1
    pad = Turn("", ("",) * n_answers, None)
    turns = [list(r.later_turns) + [pad] * (later - len(r.later_turns)) for r in records]
    put("records/later_question", _text_array([[t.question for t in ts] for ts in turns]).reshape(n, later), rc,
        str, "")
    put("records/later_reference", _text_array([[t.reference or "" for t in ts] for ts in turns]).reshape(n, later),
        rc, str, "")

    def padded(t: Turn) -> list:
        return list(t.answers) + [""] * (n_answers - len(t.answers))

    answers = [[padded(t) for t in ts] for ts in turns]
    put("records/later_answers", _text_array(answers).reshape(n, later, n_answers), rc, str, "")
    chars = np.array([[[len(a) for a in row] for row in ts] for ts in answers], dtype=np.int32)
    put("records/later_answer_chars", chars.reshape(n, later, n_answers), rc, "int32", 0)


@dataclass(frozen=True)
class Columns:
    """The per-unit and per-record columns the merge and the report need, read in one go."""

    record: np.ndarray
    order: np.ndarray
    with_reference: np.ndarray
    scores: np.ndarray
    status: np.ndarray
    truncated: np.ndarray
    done: np.ndarray
    label: np.ndarray
    label_w_reference: np.ndarray
    subset: np.ndarray
    category: np.ndarray
    gt_scores: np.ndarray  # (n_records, n_scores), NaN where the ground truth has no scores
    answer_chars: np.ndarray  # (n_records, 2): lengths of answers 1 and 2, for length bias
    turn: np.ndarray  # per unit: the turn judged (0: the first)
    cached: np.ndarray  # per unit: the verdict came from the verdict cache
    start: int = 0  # the first unit (of the store) of these columns: ``column_windows`` gives the store in parts


@dataclass(frozen=True)
class ChunkVerdicts:
    """What a shard writes for one chunk: one entry per unit of the chunk, in unit order."""

    scores: np.ndarray  # float32 (n, n_scores), NaN when unparsed
    status: np.ndarray  # int8, judgelm.data.verdicts.Status
    text: list[str]  # the generated text (the score line in fast mode)
    prompt_tokens: np.ndarray  # int32
    new_tokens: np.ndarray  # int32
    truncated: np.ndarray  # bool: the prompt's answers/reference were cut to fit the context
    extras: dict[str, np.ndarray] | None = None  # optional per-unit arrays declared at creation
    cached: np.ndarray | None = None  # bool: the verdict was reused from the verdict cache (None: none was)


@dataclass(frozen=True)
class Damage:
    """One damaged chunk: the array, the chunk, what it holds (``units`` or ``records`` ``start``..``stop - 1``),
    the shard that owns it (``None`` for the run's inputs) and what is wrong with it."""

    array: str
    chunk: int
    start: int
    stop: int
    what: str
    shard: int | None
    reason: str

    @property
    def judge(self) -> str | None:
        """The verdict arrays it belongs to (``verdicts`` or ``judges/<name>``); ``None`` for the run's inputs."""
        head, _, _ = self.array.rpartition("/")
        return head if head == "verdicts" or head.startswith("judges/") else None

    def __str__(self) -> str:
        owner = f", shard {self.shard}" if self.shard is not None else ""
        return f"{self.array} chunk {self.chunk} ({self.what} {self.start}-{self.stop - 1}{owner}): {self.reason}"


class DamagedStore(Fault):
    """Chunks of the store cannot be trusted; the message names every one (up to a few, then a count)."""

    def __init__(self, path: Path, damage: list[Damage], run: str | None = None):
        self.path, self.damage = path, damage
        shown = "; ".join(str(d) for d in damage[:4]) + (f"; and {len(damage) - 4} more" if len(damage) > 4 else "")
        if any(d.judge is None for d in damage):
            fix = "the run's inputs are damaged: create the run again from its data"
        else:
            fix = f"repair: make resubmit RUN={run or path.parent.name} re-judges exactly these units"
        super().__init__(f"{path}: {len(damage)} damaged chunk{'s' if len(damage) != 1 else ''}: {shown}. {fix}")


class IncompleteStore(RuntimeError):
    """The store has units that are not done (the merge refuses it); the message names the shards that own them."""


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()[0][:100] if str(e).strip() else type(e).__name__
    return "checksum mismatch" if "checksum" in text.lower() else f"undecodable ({type(e).__name__}: {text})"


def decode_tolerant(arr: zarr.Array) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """A whole array, and its chunks (along the first axis) that do not decode, with why: those are left at the
    fill value. One read when nothing is wrong; otherwise the failing ranges are halved down to single chunks."""
    try:
        return arr[:], []
    except Exception:  # any decoding error of a chunk file is damage, located below
        pass
    values = np.full(arr.shape, arr.fill_value, dtype=arr.dtype)
    c, n = arr.chunks[0], arr.shape[0]
    bad: list[tuple[int, str]] = []

    def visit(lo: int, hi: int) -> None:
        sl = slice(lo * c, min(hi * c, n))
        try:
            values[sl] = arr[sl]
            return
        except Exception as e:  # damage too: keep halving
            if hi - lo == 1:
                bad.append((lo, _reason(e)))
                return
        visit(lo, (lo + hi) // 2)
        visit((lo + hi) // 2, hi)

    visit(0, -(-n // c))
    return values, bad


class ChunkLayout:
    """How a store's unit axis is cut into chunks and the chunks dealt to shards; every store of the project (the
    verdict store, the answer store of ``judgelm.generation``) is laid out this way and sets the three sizes."""

    n_units: int
    chunk_units: int
    n_chunks: int

    def chunk_slice(self, chunk: int) -> slice:
        return slice(chunk * self.chunk_units, min((chunk + 1) * self.chunk_units, self.n_units))

    def shard_chunks(self, shard: int, n_shards: int) -> range:
        """The contiguous run of chunks shard ``shard`` of ``n_shards`` owns; every chunk has exactly one owner."""
        if not 0 <= shard < n_shards:
            raise ValueError(f"shard {shard} is outside 0..{n_shards - 1}")
        return range(shard * self.n_chunks // n_shards, (shard + 1) * self.n_chunks // n_shards)

    def shard_slice(self, shard: int, n_shards: int) -> slice:
        """The units shard ``shard`` owns: its chunks are contiguous, so they are one slice (empty if none)."""
        chunks = self.shard_chunks(shard, n_shards)
        if not chunks:
            return slice(0, 0)
        return slice(self.chunk_slice(chunks[0]).start, self.chunk_slice(chunks[-1]).stop)

    def shard_units(self, shard: int, n_shards: int) -> int:
        sl = self.shard_slice(shard, n_shards)
        return sl.stop - sl.start

    def done(self) -> np.ndarray:
        """Per unit: committed."""
        raise NotImplementedError

    def readable_done(self) -> np.ndarray:
        """``done`` read past damage, for reports that must still show a damaged store: unreadable chunks of it are
        not done."""
        return self.done()

    def verify(self) -> list[Damage]:
        """Every damaged chunk, named; stores whose chunks carry no checksums (answer stores) find none."""
        return []

    def chunk_done(self, chunk: int) -> bool:
        return bool(self.done()[self.chunk_slice(chunk)].all())

    def incomplete_shards(self, n_shards: int) -> list[int]:
        """Shards owning at least one chunk that is not done, decided from the store alone."""
        done = self.done()
        return [k for k in range(n_shards) if not done[self.shard_slice(k, n_shards)].all()]


class VerdictStore(ChunkLayout):
    """Open an existing store. ``create`` makes a new one; ``judge(name)`` is the view of a panel judge's verdicts."""

    def __init__(self, path: str | Path, mode: str = "r"):
        self.path = Path(path)
        self.prefix = "verdicts"  # where this view's verdict arrays live: a panel judge's are judges/<name>/
        if not (self.path / "zarr.json").exists():
            raise FileNotFoundError(f"no verdict store at {self.path}")
        try:
            self.group = zarr.open_group(str(self.path), mode=mode)
            self.attrs: dict[str, Any] = dict(self.group.attrs)
        except (ValueError, KeyError, TypeError) as e:  # the group's zarr.json does not parse
            raise DamagedStore(self.path, [Damage("zarr.json", 0, 0, 0, "attributes", None, _reason(e))]) from None
        if self.attrs.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{self.path}: store format {self.attrs.get('format_version')} is not {FORMAT_VERSION}")
        self.n_units: int = self.attrs["n_units"]
        self.n_records: int = self.attrs["n_records"]
        self.chunk_units: int = self.attrs["chunk_units"]
        self.n_chunks: int = self.attrs["n_chunks"]
        self.n_scores: int = self.attrs["n_scores"]
        self.n_turns: int = self.attrs.get("n_turns", 1)

    # --- creation -------------------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, records: list[Record], plan: UnitPlan, n_scores: int, chunk_units: int,
               attrs: dict[str, Any] | None = None, extra_arrays: ExtraSchema | None = None,
               checksums: bool = True) -> VerdictStore:
        """Write a new store for ``records`` and ``plan``; refuses to overwrite an existing one.

        ``extra_arrays`` declares additional per-unit verdict arrays as ``name: (trailing shape, dtype, fill)``,
        for engines that record more than the scores (e.g. score-token log-probabilities). ``checksums=False``
        makes a store as they were before chunks carried checksums (to measure their cost, to test old stores).
        """
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} already exists; a run's store is created once")
        if chunk_units < 1:
            raise ValueError("chunk_units must be at least 1")
        n_units, n_records = len(plan), len(records)
        n_answers = max((len(r.answers) for r in records), default=2)
        g = zarr.open_group(str(path), mode="w-")
        rc, mc = ((min(c, max(n_records, 1)),) for c in (_RECORD_CHUNK, _RECORD_META_CHUNK))

        def put(name: str, data: np.ndarray, chunks: tuple[int, ...], dtype: Any, fill: Any) -> None:
            arr = create_array(g, name, data.shape, chunks + data.shape[1:], dtype, fill, checksums)
            if data.size:
                with _every_chunk_file():
                    arr[...] = data

        def label(r: Record, w: bool) -> int:
            v = r.gt_label(w)
            return NO_LABEL if v is None else v

        gt = np.full((n_records, n_scores), np.nan, dtype=np.float32)
        for i, r in enumerate(records):
            if r.gt_scores is not None and len(r.gt_scores) == n_scores:
                gt[i] = r.gt_scores
        put("records/question_id", _text_array([str(r.question_id) for r in records]), mc, str, "")
        put("records/question", _text_array([r.question for r in records]), rc, str, "")
        answers = _text_array([list(r.answers) + [""] * (n_answers - len(r.answers)) for r in records])
        put("records/answers", answers.reshape(n_records, n_answers), rc, str, "")
        put("records/reference", _text_array([r.reference or "" for r in records]), rc, str, "")
        put("records/n_answers", np.array([len(r.answers) for r in records], dtype=np.int8), mc, "int8", 2)
        # Answer lengths in characters, so the merge's length-bias figures need not read the answer texts.
        chars = np.array([[len(a) for a in r.answers] + [0] * (n_answers - len(r.answers)) for r in records],
                         dtype=np.int32).reshape(n_records, n_answers)
        put("records/answer_chars", chars, mc, "int32", 0)
        put("records/has_reference", np.array([r.reference is not None for r in records], dtype=bool), mc, bool, False)
        put("records/label", np.array([label(r, False) for r in records], dtype=np.int8), mc, "int8", NO_LABEL)
        put("records/label_w_reference", np.array([label(r, True) for r in records], dtype=np.int8), mc, "int8",
            NO_LABEL)
        put("records/gt_scores", gt, mc, "float32", np.nan)
        put("records/subset", _text_array([r.subset for r in records]), mc, str, "")
        put("records/category", _text_array([r.category for r in records]), mc, str, "")
        models = _text_array([list(r.models) + [""] * (n_answers - len(r.models)) for r in records])
        put("records/models", models.reshape(n_records, n_answers), mc, str, "")
        n_turns = max((r.n_turns for r in records), default=1)
        if n_turns > 1:
            _put_later_turns(put, records, n_turns, n_answers, rc)

        uc = (chunk_units,)
        put("units/record", plan.record, uc, "int32", -1)
        put("units/order", plan.order, uc, "int8", 0)
        put("units/with_reference", plan.with_reference, uc, bool, False)
        put("units/turn", plan.turn, uc, "int8", 0)
        _declare_verdicts(g, "verdicts", n_units, chunk_units, n_scores, extra_arrays, checksums)
        g.attrs.update({
            **(attrs or {}), "format_version": FORMAT_VERSION, "n_units": n_units, "n_records": n_records,
            "chunk_units": chunk_units, "n_chunks": max(1, -(-n_units // chunk_units)), "n_scores": n_scores,
            "n_answers": n_answers, "n_turns": n_turns, "extra_arrays": sorted(extra_arrays or {}),
            "records_in_unit_order": bool((np.diff(plan.record) >= 0).all()),
            **({"checksums": CHECKSUMS} if checksums else {}),
        })
        return cls(path, mode="r+")

    # --- reading ------------------------------------------------------------------------------------------------

    def _read(self, path: str, committed: np.ndarray | None = None) -> np.ndarray:
        """An array, whole, verified: any damaged chunk (and, with ``committed`` chunks given, any committed chunk
        whose file is missing) raises ``DamagedStore`` naming every damaged chunk of the store."""
        values, bad = decode_tolerant(self.group[path])
        if bad or (committed is not None and self._missing(path, committed)):
            raise DamagedStore(self.path, self.verify(), self.attrs.get("run"))
        return values

    def records(self, name: str) -> np.ndarray:
        """A per-record column (``question_id``, ``label``, ``answer_chars``...), whole."""
        return self._read(f"records/{name}")

    def units(self, name: str) -> np.ndarray:
        """A per-unit column of the plan (``record``, ``order``, ``with_reference``, ``turn``), whole."""
        if name == "turn" and "turn" not in self.group["units"]:  # made before multi-turn units: all first turns
            return np.zeros(self.n_units, dtype=np.int8)
        return self._read(f"units/{name}")

    def _by_turn(self, first: str, later: str) -> np.ndarray:
        """A per-answer records column over every turn, ``(n_records, n_turns, n_answers)``."""
        rows = self.records(first)[:, None, :]
        return rows if self.n_turns == 1 else np.concatenate([rows, self.records(later)], axis=1)

    def answer_chars_by_turn(self) -> np.ndarray:
        """Answer lengths in characters, ``(n_records, n_turns, n_answers)`` (0 past a record's last turn)."""
        return self._by_turn("answer_chars", "later_answer_chars")

    def answers_by_turn(self) -> np.ndarray:
        """Answer texts, ``(n_records, n_turns, n_answers)`` ("" past a record's last turn)."""
        return self._by_turn("answers", "later_answers")

    def verdicts(self, name: str) -> np.ndarray:
        """A per-unit verdict column (``scores``, ``status``, ``text``, ``attempt``, an extra array...) of this
        view's judge (the run's own, or a panel judge's: ``judge(name)``), whole and verified."""
        if name == "done":
            return self.done()
        return self._read(f"{self.prefix}/{name}", self.committed_chunks() if self.checksummed else None)

    @property
    def checksummed(self) -> bool:
        """Chunks carry checksums and committed chunks all their files (stores made since checksums)."""
        return self.attrs.get("checksums") == CHECKSUMS

    def committed_chunks(self, done: np.ndarray | None = None) -> np.ndarray:
        """Per chunk: every unit of it is done."""
        done = self.done() if done is None else done
        return np.logical_and.reduceat(done, np.arange(0, self.n_units, self.chunk_units)) if self.n_units else done

    def _chunk_file(self, path: str, chunk: int, arr: zarr.Array | None = None) -> Path:
        arr = self.group[path] if arr is None else arr
        return self.path / path / arr.metadata.encode_chunk_key((chunk,) + (0,) * (arr.ndim - 1))

    def _missing(self, path: str, chunks: np.ndarray) -> list[int]:
        """Of ``chunks`` (committed ones: indices, or a mask over every chunk), those whose file in the verdict
        array ``path`` is gone."""
        arr = self.group[path]  # opened once: every opening reads its metadata
        chunks = np.flatnonzero(chunks) if chunks.dtype == bool else chunks
        return [int(c) for c in chunks if not os.path.exists(self._chunk_file(path, int(c), arr))]

    @property
    def extras(self) -> list[str]:
        """The extra verdict arrays this store was created with."""
        return list(self.attrs.get("extra_arrays", []))

    def has_logprobs(self) -> bool:
        return TOP_IDS in self.extras

    def empty_extras(self, n: int) -> dict[str, np.ndarray]:
        """Fill-valued buffers for ``n`` units of every extra array, for a shard to fill and ``write_chunk``."""
        out = {}
        for name in self.extras:
            arr = self.group[f"{self.prefix}/{name}"]
            out[name] = np.full((n,) + arr.shape[1:], arr.fill_value, dtype=arr.dtype)
        return out

    def columns(self) -> Columns:
        return self._columns(slice(0, self.n_units), slice(0, self.n_records))

    def column_windows(self, units: int = 0) -> Iterator[Columns]:
        """The columns in windows of about ``units`` units (default: a chunk), each ending with a record's last
        unit and holding only its own records (``record`` indexes them), so that reading a store of any size takes
        the memory of one window. A store whose records are not in unit order (made before they were) comes
        whole, in one window. Damage raises ``DamagedStore`` as ``columns`` does, from the window that reads it."""
        if not self.attrs.get("records_in_unit_order"):
            yield self.columns()
            return
        step, start = max(1, units or self.chunk_units), 0

        def record_at(unit: int) -> int:
            return int(self._read_slice("units/record", slice(unit, unit + 1))[0])

        while start < self.n_units:
            end = min(start + step, self.n_units)
            rec = self._read_slice("units/record", slice(start, end))
            if end < self.n_units and record_at(end) == rec[-1]:  # the last record goes on: it opens the next window
                cut = int(np.searchsorted(rec, rec[-1]))
                if cut:
                    end, rec = start + cut, rec[:cut]
                while not cut and end < self.n_units and record_at(end) == rec[-1]:  # a record longer than a window
                    end += 1
            yield self._columns(slice(start, end), slice(int(rec[0]), int(rec[-1]) + 1))
            start = end

    def _columns(self, units: slice, records: slice) -> Columns:
        """The columns of ``units``, whose records are ``records`` (``record`` indexes them from its start), read
        verified: a damaged chunk, or in a checksummed store a committed chunk without its file, raises
        ``DamagedStore`` naming every damaged chunk."""
        names = ["scores", "status", "truncated"] + (["cached"] if "cached" in self.group[self.prefix] else [])
        done = self._committed_done(units, names)
        n = units.stop - units.start
        v = {name: self._read_slice(f"{self.prefix}/{name}", units) for name in names}
        unit = {name: self._read_slice(f"units/{name}", units) for name in ("record", "order", "with_reference")}
        turn = self._read_slice("units/turn", units) if "turn" in self.group["units"] else np.zeros(n, np.int8)
        row = {name: self._read_slice(f"records/{name}", records) for name in
               ("label", "label_w_reference", "subset", "category", "gt_scores", "answer_chars")}
        return Columns(record=unit["record"] - records.start, order=unit["order"],
                       with_reference=unit["with_reference"], scores=v["scores"], status=v["status"],
                       truncated=v["truncated"], done=done, label=row["label"],
                       label_w_reference=row["label_w_reference"], subset=row["subset"], category=row["category"],
                       gt_scores=row["gt_scores"], answer_chars=row["answer_chars"][:, :2], turn=turn,
                       cached=v.get("cached", np.zeros(n, dtype=bool)), start=units.start)

    def _committed_done(self, units: slice, names: list[str]) -> np.ndarray:
        """``done`` of ``units``; in a checksummed store, first checked that every committed chunk they touch has
        its file in each verdict array ``names`` (a chunk file deleted after its commit is damage, not fill)."""
        cu = self.chunk_units
        lo, hi = units.start // cu * cu, min(-(-units.stop // cu) * cu, self.n_units)
        done = self._read_slice(f"{self.prefix}/done", slice(lo, hi))
        if self.checksummed and len(done):
            committed = lo // cu + np.flatnonzero(np.logical_and.reduceat(done, np.arange(0, len(done), cu)))
            if any(self._missing(f"{self.prefix}/{name}", committed) for name in names):
                raise DamagedStore(self.path, self.verify(), self.attrs.get("run"))
        return done[units.start - lo: units.stop - lo]

    def record_models(self) -> np.ndarray | None:
        """The generator of each answer, ``(n_records, n_answers)``; ``None`` unless some record names one (a
        model evaluation)."""
        if "models" not in self.group["records"]:
            return None
        models = self.records("models")
        return models if (models != "").any() else None

    def cached(self) -> np.ndarray:
        """Per unit: the verdict came from the verdict cache (all False in stores made before the cache)."""
        if "cached" not in self.group[self.prefix]:
            return np.zeros(self.n_units, dtype=bool)
        return self.verdicts("cached")

    def done(self) -> np.ndarray:
        return self._read(f"{self.prefix}/done")

    def readable_done(self) -> np.ndarray:
        return decode_tolerant(self.group[f"{self.prefix}/done"])[0]

    def unit_labels(self) -> np.ndarray:
        """Each unit's ground-truth label (1, 0, -1) as the unit shows the answers (a swapped unit's is negated),
        from the reference mode it was judged in; ``NO_LABEL`` where the record has none."""
        record, with_reference = self.units("record"), self.units("with_reference")
        label = np.where(with_reference, self.records("label_w_reference")[record], self.records("label")[record])
        flipped = np.where(self.units("order") == 1, -label, label)
        return np.where(label == NO_LABEL, NO_LABEL, flipped).astype(np.int8)

    def chunk_done(self, chunk: int) -> bool:
        """Whether a chunk is committed; one whose ``done`` cannot be read is not (judging it again heals it)."""
        try:
            return bool(self.group[f"{self.prefix}/done"][self.chunk_slice(chunk)].all())
        except Exception:  # an undecodable commit marker is no commit
            return False

    def chunk_inputs(self, chunk: int) -> dict[str, Any]:
        """Everything needed to build the prompts of one chunk's units."""
        sl = self.chunk_slice(chunk)
        rec = self._read_slice("units/record", sl)
        lo, hi = int(rec.min()), int(rec.max()) + 1
        rsl = slice(lo, hi)
        n_answers = self.attrs["n_answers"]

        def rows(name: str) -> np.ndarray:
            return self._read_slice(f"records/{name}", rsl)

        out = {
            "unit": np.arange(sl.start, sl.stop), "record": rec, "order": self._read_slice("units/order", sl),
            "with_reference": self._read_slice("units/with_reference", sl), "record_offset": lo,
            "question": rows("question").tolist(),
            "answers": rows("answers").reshape(hi - lo, n_answers).tolist(),
            "reference": rows("reference").tolist(), "n_answers": rows("n_answers"),
            "turn": self._read_slice("units/turn", sl) if self.n_turns > 1 else None,
        }
        if self.n_turns > 1:
            later = self.n_turns - 1
            out.update(later_question=rows("later_question").reshape(hi - lo, later).tolist(),
                       later_answers=rows("later_answers").reshape(hi - lo, later, n_answers).tolist(),
                       later_reference=rows("later_reference").reshape(hi - lo, later).tolist())
        return out

    def _read_slice(self, path: str, sl: slice) -> np.ndarray:
        try:
            return self.group[path][sl]
        except Exception:  # damage: located and named by verify
            raise DamagedStore(self.path, self.verify(), self.attrs.get("run")) from None

    # --- integrity ----------------------------------------------------------------------------------------------

    def verify(self) -> list[Damage]:
        """Every damaged chunk of the store: inputs, unit plan, and the verdicts of every judge (a chunk file that
        fails its checksum or does not decode; in checksummed stores also a committed chunk without its file)."""
        damage = []
        for group in ("records", "units"):
            for name in sorted(self.group[group].array_keys()):
                damage += self._damage(f"{group}/{name}", None)
        for prefix in ["verdicts"] + [f"judges/{j}" for j in self.judges()]:
            done, bad = decode_tolerant(self.group[f"{prefix}/done"])
            damage += [self._describe(f"{prefix}/done", k, why) for k, why in bad]
            committed = self.committed_chunks(done) if self.checksummed else None
            for name in sorted(self.group[prefix].array_keys()):
                if name != "done":
                    damage += self._damage(f"{prefix}/{name}", committed)
        return damage

    def _damage(self, path: str, committed: np.ndarray | None) -> list[Damage]:
        _, bad = decode_tolerant(self.group[path])
        missing = self._missing(path, committed) if committed is not None else []
        return ([self._describe(path, k, why) for k, why in bad]
                + [self._describe(path, k, "chunk file missing") for k in missing if k not in dict(bad)])

    def _describe(self, path: str, chunk: int, reason: str) -> Damage:
        if path.startswith("records/"):
            c = self.group[path].chunks[0]
            return Damage(path, chunk, chunk * c, min((chunk + 1) * c, self.n_records), "records", None, reason)
        sl, n_shards = self.chunk_slice(chunk), int(self.attrs.get("n_shards", 1))
        shard = next(k for k in range(n_shards) if chunk in self.shard_chunks(k, n_shards))
        return Damage(path, chunk, sl.start, sl.stop, "units", shard, reason)

    def repair(self, damage: list[Damage]) -> list[Damage]:
        """Turn the damaged verdict chunks back into "not judged" (every verdict array of the chunk at its fill
        value, ``done`` False), so running their shard again re-judges exactly those units; returns what was
        repaired. Damage to the run's inputs (``records/``, ``units/``) cannot be repaired here."""
        fixed = [d for d in damage if d.judge is not None]
        with _every_chunk_file():
            for prefix, chunk in sorted({(d.judge, d.chunk) for d in fixed}):
                sl = self.chunk_slice(chunk)
                for name in self.group[prefix].array_keys():
                    arr = self.group[f"{prefix}/{name}"]
                    arr[sl] = np.full((sl.stop - sl.start,) + arr.shape[1:], arr.fill_value, dtype=arr.dtype)
        return fixed

    # --- writing ------------------------------------------------------------------------------------------------

    def write_chunk(self, chunk: int, v: ChunkVerdicts, attempt: int) -> None:
        """Write one whole chunk, ``done`` last: it is the commit marker."""
        sl = self.chunk_slice(chunk)
        n = sl.stop - sl.start
        if len(v.status) != n or v.scores.shape != (n, self.n_scores) or len(v.text) != n:
            raise ValueError(f"chunk {chunk} holds {n} units; got {len(v.status)} verdicts "
                             f"with scores of shape {v.scores.shape}")
        arrays = {"scores": v.scores.astype(np.float32), "status": v.status.astype(np.int8),
                  "text": _text_array(v.text), "prompt_tokens": v.prompt_tokens.astype(np.int32),
                  "new_tokens": v.new_tokens.astype(np.int32), "truncated": v.truncated.astype(bool),
                  "attempt": np.full(n, attempt, dtype=np.int16), **(v.extras or {})}
        if "cached" in self.group[self.prefix]:  # stores made before the verdict cache have no such array
            arrays["cached"] = np.zeros(n, dtype=bool) if v.cached is None else v.cached.astype(bool)
        commit_chunk(self.group, self.prefix, sl, arrays)

    # --- panels: other judges of the same units ---------------------------------------------------------------

    def add_judge(self, name: str, attrs: dict[str, Any],
                  extra_arrays: dict[str, tuple[tuple[int, ...], str, Any]] | None = None) -> VerdictStore:
        """Declare the verdict arrays of another judge of this store's units (``judges/<name>/``, chunked like the
        run's own, so one array of shards per judge can fill them); returns that judge's view. ``extra_arrays``
        defaults to the run's own (a panel judge records what the run's judge records)."""
        if extra_arrays is None:
            own = [self.group[f"verdicts/{n}"] for n in self.attrs.get("extra_arrays", [])]
            extra_arrays = {a.basename: (a.shape[1:], a.dtype, a.fill_value) for a in own}
        if not _JUDGE_NAME.fullmatch(name):
            raise ValueError(f"judge name {name!r}: use letters, digits, '.', '_' and '-'")
        if name in self.judges():
            raise ValueError(f"{self.path} already has a judge {name!r}; choose another name")
        _declare_verdicts(self.group, f"judges/{name}", self.n_units, self.chunk_units, self.n_scores, extra_arrays)
        self.group[f"judges/{name}"].attrs.update({**attrs, "extra_arrays": sorted(extra_arrays or {})})
        return self.judge(name)

    def judges(self) -> list[str]:
        """The names of the panel judges added to this store (the run's own judge is not among them)."""
        return sorted(self.group["judges"].group_keys()) if "judges" in self.group else []

    def judge(self, name: str) -> VerdictStore:
        """The view of judge ``name``: reading and writing verdicts goes to ``judges/<name>/``; ``attrs`` are the
        judge's (model, imported_from, ...) over the run's."""
        if name not in self.judges():
            raise KeyError(f"{self.path} has no judge {name!r} (judges: {', '.join(self.judges()) or 'none'})")
        view = copy.copy(self)
        view.prefix = f"judges/{name}"
        view.attrs = {**self.attrs, **dict(self.group[view.prefix].attrs)}
        return view
