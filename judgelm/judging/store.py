"""The verdict store: one Zarr group per run holding the inputs, the unit plan and every verdict.

Layout (``verdicts.zarr``):

- ``records/*`` (one row per record): question, answers, reference, ground truth, subset, category and the
  generator of each answer (``models``, empty outside model evaluations), so a
  shard needs nothing but the store and a queued run cannot be changed by editing the data file afterwards.
- ``units/*`` (one row per unit): record index, answer order, with-reference flag.
- ``verdicts/*`` (one row per unit): scores as the judge wrote them (in the order it saw the answers; NaN when
  they did not parse), status, generated text, token counts, the attempt that judged it, whether the verdict came
  from the verdict cache (``cached``, ``judgelm.judging.verdict_cache``), and ``done``.
  Optional arrays declared at creation: score-token log-probabilities (``top_ids``, ``top_logprobs``) and the draws
  beyond the primary verdict (``sample_*``, ``retry_*``: ``draw_arrays``).
- ``judges/<name>/*`` (optional, one row per unit): the same verdict arrays for each further judge of a panel
  (``add_judge``, ``judge(name)``); the run's own judge stays in ``verdicts/``.

Concurrency rule: a shard owns whole chunks of the unit axis and writes a chunk in one go, ``done`` last.
Writers that share a chunk silently lose rows in Zarr (read-modify-write), and a chunk file is replaced
atomically, so "done is True" means every verdict array of that chunk was written. A killed shard leaves at
most its current chunk unfinished, and re-running it skips every chunk whose ``done`` is all True.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from judgelm.data.records import Record
from judgelm.judging.units import UnitPlan

FORMAT_VERSION = 1
NO_LABEL = 2  # int8 sentinel in records/label*: the record has no ground truth for that reference mode
_RECORD_CHUNK = 4096
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
                      extra_arrays: dict[str, tuple[tuple[int, ...], str, Any]] | None) -> None:
    """The empty per-unit verdict arrays of one judge under ``prefix``, chunked along the unit axis."""
    uc = (chunk_units,)
    for name, shape, dtype, fill in (("scores", (n_scores,), "float32", np.nan), ("status", (), "int8", -1),
                                     ("text", (), str, ""), ("prompt_tokens", (), "int32", 0),
                                     ("new_tokens", (), "int32", 0), ("attempt", (), "int16", -1),
                                     ("truncated", (), bool, False), ("cached", (), bool, False),
                                     ("done", (), bool, False),
                                     *((n, tuple(sh), dt, f) for n, (sh, dt, f) in (extra_arrays or {}).items())):
        g.create_array(f"{prefix}/{name}", shape=(n_units,) + shape, chunks=uc + shape, dtype=dtype, fill_value=fill)


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


class VerdictStore:
    """Open an existing store. ``create`` makes a new one; ``judge(name)`` is the view of a panel judge's verdicts."""

    def __init__(self, path: str | Path, mode: str = "r"):
        self.path = Path(path)
        self.prefix = "verdicts"  # where this view's verdict arrays live: a panel judge's are judges/<name>/
        if not (self.path / "zarr.json").exists():
            raise FileNotFoundError(f"no verdict store at {self.path}")
        self.group = zarr.open_group(str(self.path), mode=mode)
        self.attrs: dict[str, Any] = dict(self.group.attrs)
        if self.attrs.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{self.path}: store format {self.attrs.get('format_version')} is not {FORMAT_VERSION}")
        self.n_units: int = self.attrs["n_units"]
        self.n_records: int = self.attrs["n_records"]
        self.chunk_units: int = self.attrs["chunk_units"]
        self.n_chunks: int = self.attrs["n_chunks"]
        self.n_scores: int = self.attrs["n_scores"]

    # --- creation -------------------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, records: list[Record], plan: UnitPlan, n_scores: int, chunk_units: int,
               attrs: dict[str, Any] | None = None,
               extra_arrays: ExtraSchema | None = None) -> VerdictStore:
        """Write a new store for ``records`` and ``plan``; refuses to overwrite an existing one.

        ``extra_arrays`` declares additional per-unit verdict arrays as ``name: (trailing shape, dtype, fill)``,
        for engines that record more than the scores (e.g. score-token log-probabilities).
        """
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} already exists; a run's store is created once")
        if chunk_units < 1:
            raise ValueError("chunk_units must be at least 1")
        n_units, n_records = len(plan), len(records)
        n_answers = max((len(r.answers) for r in records), default=2)
        g = zarr.open_group(str(path), mode="w-")
        rc = (min(_RECORD_CHUNK, max(n_records, 1)),)

        def put(name: str, data: np.ndarray, chunks: tuple[int, ...], dtype: Any, fill: Any) -> None:
            arr = g.create_array(name, shape=data.shape, chunks=chunks + data.shape[1:], dtype=dtype, fill_value=fill)
            if data.size:
                arr[...] = data

        def label(r: Record, w: bool) -> int:
            v = r.gt_label(w)
            return NO_LABEL if v is None else v

        gt = np.full((n_records, n_scores), np.nan, dtype=np.float32)
        for i, r in enumerate(records):
            if r.gt_scores is not None and len(r.gt_scores) == n_scores:
                gt[i] = r.gt_scores
        put("records/question_id", _text_array([str(r.question_id) for r in records]), rc, str, "")
        put("records/question", _text_array([r.question for r in records]), rc, str, "")
        answers = _text_array([list(r.answers) + [""] * (n_answers - len(r.answers)) for r in records])
        put("records/answers", answers.reshape(n_records, n_answers), rc, str, "")
        put("records/reference", _text_array([r.reference or "" for r in records]), rc, str, "")
        put("records/n_answers", np.array([len(r.answers) for r in records], dtype=np.int8), rc, "int8", 2)
        # Answer lengths in characters, so the merge's length-bias figures need not read the answer texts.
        chars = np.array([[len(a) for a in r.answers] + [0] * (n_answers - len(r.answers)) for r in records],
                         dtype=np.int32).reshape(n_records, n_answers)
        put("records/answer_chars", chars, rc, "int32", 0)
        put("records/has_reference", np.array([r.reference is not None for r in records], dtype=bool), rc, bool, False)
        put("records/label", np.array([label(r, False) for r in records], dtype=np.int8), rc, "int8", NO_LABEL)
        put("records/label_w_reference", np.array([label(r, True) for r in records], dtype=np.int8), rc, "int8",
            NO_LABEL)
        put("records/gt_scores", gt, rc, "float32", np.nan)
        put("records/subset", _text_array([r.subset for r in records]), rc, str, "")
        put("records/category", _text_array([r.category for r in records]), rc, str, "")
        models = _text_array([list(r.models) + [""] * (n_answers - len(r.models)) for r in records])
        put("records/models", models.reshape(n_records, n_answers), rc, str, "")

        uc = (chunk_units,)
        put("units/record", plan.record, uc, "int32", -1)
        put("units/order", plan.order, uc, "int8", 0)
        put("units/with_reference", plan.with_reference, uc, bool, False)
        _declare_verdicts(g, "verdicts", n_units, chunk_units, n_scores, extra_arrays)
        g.attrs.update({
            **(attrs or {}), "format_version": FORMAT_VERSION, "n_units": n_units, "n_records": n_records,
            "chunk_units": chunk_units, "n_chunks": max(1, -(-n_units // chunk_units)), "n_scores": n_scores,
            "n_answers": n_answers, "extra_arrays": sorted(extra_arrays or {}),
            "records_in_unit_order": bool((np.diff(plan.record) >= 0).all()),
        })
        return cls(path, mode="r+")

    # --- layout -----------------------------------------------------------------------------------------------

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

    # --- reading ------------------------------------------------------------------------------------------------

    def records(self, name: str) -> np.ndarray:
        """A per-record column (``question_id``, ``label``, ``answer_chars``...), whole."""
        return self.group[f"records/{name}"][:]

    def units(self, name: str) -> np.ndarray:
        """A per-unit column of the plan (``record``, ``order``, ``with_reference``), whole."""
        return self.group[f"units/{name}"][:]

    def verdicts(self, name: str) -> np.ndarray:
        """A per-unit verdict column (``scores``, ``status``, ``text``, ``attempt``, an extra array...) of this
        view's judge (the run's own, or a panel judge's: ``judge(name)``), whole."""
        return self.group[f"{self.prefix}/{name}"][:]

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
        return self._columns(self._column_arrays(), slice(0, self.n_units), self.units("record"), 0, self.n_records)

    def column_windows(self, units: int = 0) -> Iterator[Columns]:
        """The columns in windows of about ``units`` units (default: a chunk), each ending with a record's last
        unit and holding only its own records (``record`` indexes them), so that reading a store of any size takes
        the memory of one window. A store whose records are not in unit order (made before they were) comes
        whole, in one window."""
        if not self.attrs.get("records_in_unit_order"):
            yield self.columns()
            return
        arrays = self._column_arrays()
        step, start, record = max(1, units or self.chunk_units), 0, arrays["units/record"]
        while start < self.n_units:
            end = min(start + step, self.n_units)
            rec = record[start:end]
            if end < self.n_units and record[end] == rec[-1]:  # the last record goes on: it opens the next window
                cut = int(np.searchsorted(rec, rec[-1]))
                while not cut and end < self.n_units and record[end] == rec[-1]:  # a record longer than a window
                    end += 1
                end = start + cut if cut else end
                rec = record[start:end]
            yield self._columns(arrays, slice(start, end), rec - rec[0], int(rec[0]), int(rec[-1]) + 1)
            start = end

    def _column_arrays(self) -> dict[str, Any]:
        """The arrays ``Columns`` is read from, opened once (each opening reads metadata)."""
        names = [f"units/{n}" for n in ("record", "order", "with_reference")] + \
            [f"records/{n}" for n in ("label", "label_w_reference", "subset", "category", "gt_scores", "answer_chars")]
        verdicts = ["scores", "status", "truncated", "done"]
        verdicts += ["cached"] if "cached" in self.group[self.prefix] else []
        return {**{n: self.group[n] for n in names}, **{n: self.group[f"{self.prefix}/{n}"] for n in verdicts}}

    @staticmethod
    def _columns(arrays: dict[str, Any], units: slice, record: np.ndarray, lo: int, hi: int) -> Columns:
        rs = slice(lo, hi)
        cached = arrays["cached"][units] if "cached" in arrays else np.zeros(units.stop - units.start, dtype=bool)
        chars = arrays["records/answer_chars"][rs][:, :2]
        return Columns(record=record, order=arrays["units/order"][units],
                       with_reference=arrays["units/with_reference"][units], scores=arrays["scores"][units],
                       status=arrays["status"][units], truncated=arrays["truncated"][units], done=arrays["done"][units],
                       label=arrays["records/label"][rs], label_w_reference=arrays["records/label_w_reference"][rs],
                       subset=arrays["records/subset"][rs], category=arrays["records/category"][rs],
                       gt_scores=arrays["records/gt_scores"][rs], answer_chars=chars, cached=cached, start=units.start)

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
        return self.verdicts("done")

    def unit_labels(self) -> np.ndarray:
        """Each unit's ground-truth label (1, 0, -1) as the unit shows the answers (a swapped unit's is negated),
        from the reference mode it was judged in; ``NO_LABEL`` where the record has none."""
        record, with_reference = self.units("record"), self.units("with_reference")
        label = np.where(with_reference, self.records("label_w_reference")[record], self.records("label")[record])
        flipped = np.where(self.units("order") == 1, -label, label)
        return np.where(label == NO_LABEL, NO_LABEL, flipped).astype(np.int8)

    def chunk_done(self, chunk: int) -> bool:
        return bool(self.group[f"{self.prefix}/done"][self.chunk_slice(chunk)].all())

    def chunk_inputs(self, chunk: int) -> dict[str, Any]:
        """Everything needed to build the prompts of one chunk's units."""
        sl = self.chunk_slice(chunk)
        rec = self.group["units/record"][sl]
        lo, hi = int(rec.min()), int(rec.max()) + 1
        rsl = slice(lo, hi)
        n_answers = self.attrs["n_answers"]

        def rows(name: str) -> np.ndarray:
            return self.group[f"records/{name}"][rsl]

        return {
            "unit": np.arange(sl.start, sl.stop), "record": rec, "order": self.group["units/order"][sl],
            "with_reference": self.group["units/with_reference"][sl], "record_offset": lo,
            "question": rows("question").tolist(),
            "answers": rows("answers").reshape(hi - lo, n_answers).tolist(),
            "reference": rows("reference").tolist(), "n_answers": rows("n_answers"),
        }

    # --- writing ------------------------------------------------------------------------------------------------

    def write_chunk(self, chunk: int, v: ChunkVerdicts, attempt: int) -> None:
        """Write one whole chunk, ``done`` last: it is the commit marker."""
        sl = self.chunk_slice(chunk)
        n = sl.stop - sl.start
        if len(v.status) != n or v.scores.shape != (n, self.n_scores) or len(v.text) != n:
            raise ValueError(f"chunk {chunk} holds {n} units; got {len(v.status)} verdicts "
                             f"with scores of shape {v.scores.shape}")
        g, p = self.group, self.prefix
        g[f"{p}/scores"][sl] = v.scores.astype(np.float32)
        g[f"{p}/status"][sl] = v.status.astype(np.int8)
        g[f"{p}/text"][sl] = _text_array(v.text)
        g[f"{p}/prompt_tokens"][sl] = v.prompt_tokens.astype(np.int32)
        g[f"{p}/new_tokens"][sl] = v.new_tokens.astype(np.int32)
        g[f"{p}/truncated"][sl] = v.truncated.astype(bool)
        g[f"{p}/attempt"][sl] = np.full(n, attempt, dtype=np.int16)
        if "cached" in g[p]:  # stores made before the verdict cache have no such array
            g[f"{p}/cached"][sl] = np.zeros(n, dtype=bool) if v.cached is None else v.cached.astype(bool)
        for name, arr in (v.extras or {}).items():
            g[f"{p}/{name}"][sl] = arr
        g[f"{p}/done"][sl] = np.ones(n, dtype=bool)

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
