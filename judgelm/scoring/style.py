"""Style features of answers and of battles, as Arena-Hard-Auto's style control defines them (lmarena/arena-hard-auto
at 196f6b8: ``utils/add_markdown_info.py`` for an answer, ``show_result.py`` for a battle).

Per answer (``answer_features``), four counts:

- ``token_len``: tokens of the answer in OpenAI's ``o200k_base`` encoding (what ``tiktoken.encoding_for_model
  ("gpt-4o")`` gives; special-token text is encoded as ordinary text). The encoding's rank file ships with this
  package (``judgelm/scoring/data``), checked against tiktoken's own sha256 when loaded, so nothing is downloaded.
- ``header_count``: lines starting with 1 to 6 ``#`` then whitespace; ``list_count``: lines starting with optional
  whitespace then ``1.``-style numbers or ``-``/``*``/``+``, then whitespace; ``bold_count``: ``**x**`` and ``__x__``
  spans within a line. Counted after removing fenced code the authors' way: every text found between a pair of
  triple backticks (with no backtick inside) is deleted wherever it occurs in the answer, the fences stay.

Per battle of a model's answer against its opponent's (``battle_features``), with ``l`` the token lengths and ``d``
the markdown densities ``count / (token_len + 1)``:

    length = (l_model − l_opp) / (l_model + l_opp)          (0 when both are empty)
    header, list, bold = (d_model − d_opp) / (d_model + d_opp + 1)

The regression uses them standardised over the battles: ``(x − mean) / std`` with the sample standard deviation
(``StyleNorm.fit``, battles weighted as they count). The normalisation can be saved and given again, so that a
later leaderboard standardises with the same constants (``judgelm.scoring.arena_hard``). Centering is what makes a
style-controlled score the win rate at the *average* style difference of the board's battles (which, against one
baseline, is rarely zero); ``center=False`` reads it at equal style instead (not Arena-Hard-Auto's setting).
"""

from __future__ import annotations

import base64
import hashlib
import lzma
import re
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np

FEATURES = ("length", "header", "list", "bold")
O200K_FILE = Path(__file__).parent / "data" / "o200k_base.tiktoken.xz"
# tiktoken_ext/openai_public.py: the expected sha256 of o200k_base.tiktoken, and the encoding's pre-tokenizer.
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])

_CODE = re.compile(r"```([^`]*)```")
_HEADER = re.compile(r"^#{1,6}\s", re.MULTILINE)
_LIST = (re.compile(r"^\s*\d+\.\s", re.MULTILINE), re.compile(r"^\s*[-*+]\s", re.MULTILINE))
_BOLD = (re.compile(r"\*\*[^*\n]+\*\*"), re.compile(r"__[^_\n]+__"))


@cache
def o200k():
    """OpenAI's o200k_base encoding through tiktoken, from the shipped rank file."""
    import tiktoken

    data = lzma.decompress(O200K_FILE.read_bytes())
    if hashlib.sha256(data).hexdigest() != O200K_SHA256:
        raise ValueError(f"{O200K_FILE} is not o200k_base (sha256 differs from tiktoken's); reinstall the package")
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines())}
    return tiktoken.Encoding("o200k_base", pat_str=O200K_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018})


def without_code(text: str) -> str:
    for block in _CODE.findall(text):
        text = text.replace(block, "")
    return text


def markdown_counts(text: str) -> tuple[int, int, int]:
    """Headers, list items and bold spans of ``text`` (code removed first)."""
    text = without_code(text)
    headers = len(_HEADER.findall(text))
    # Arena-Hard counts h1..h6 with one pattern each, "^#{k}\s": a line "## x" matches only k=2, so one count.
    return headers, sum(len(p.findall(text)) for p in _LIST), sum(len(p.findall(text)) for p in _BOLD)


def answer_features(texts: list[str] | np.ndarray) -> np.ndarray:
    """``(n, 4)`` float: token_len, header_count, list_count, bold_count per text; each distinct text once."""
    # A dict finds the distinct texts: np.unique would copy them into a fixed-width array as wide as the longest
    # (0.24 of make evaluate's 0.9 s merge) and sort it.
    index: dict[str, int] = {}
    inverse = np.fromiter((index.setdefault(str(t), len(index)) for t in np.asarray(texts, dtype=object).ravel()),
                          dtype=np.int64, count=np.size(texts))
    unique = list(index)
    lengths = o200k().encode_ordinary_batch(unique) if unique else []
    rows = [(len(ids), *markdown_counts(t)) for ids, t in zip(lengths, unique)]
    return np.asarray(rows, dtype=float).reshape(-1, 4)[inverse]


def battle_features(own: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``(n, 4)``: the length and markdown-density differences of each battle (module docs)."""
    total = own[:, 0] + other[:, 0]
    length = np.divide(own[:, 0] - other[:, 0], total, out=np.zeros(len(own)), where=total > 0)
    d_own, d_other = own[:, 1:] / (own[:, :1] + 1), other[:, 1:] / (other[:, :1] + 1)
    return np.column_stack([length, (d_own - d_other) / (d_own + d_other + 1)])


@dataclass(frozen=True)
class StyleNorm:
    """The standardisation of the battle features: ``(x - mean) / std`` per feature."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, x: np.ndarray, weight: np.ndarray | None = None, center: bool = True) -> StyleNorm:
        """Mean and sample standard deviation over the battles, each counted ``weight`` times (as the rows
        Arena-Hard-Auto repeats for a strong verdict). A feature that never varies keeps std 1. ``center=False``
        keeps the mean at 0 (only scales), so that a score is read at equal style rather than at the average."""
        w = np.ones(len(x)) if weight is None else weight.astype(float)
        mean = (w[:, None] * x).sum(0) / w.sum()
        var = (w[:, None] * (x - mean) ** 2).sum(0) / max(w.sum() - 1, 1)
        std = np.sqrt(var)
        return cls(tuple(map(float, mean if center else np.zeros_like(mean))),
                   tuple(float(s) if s > 0 else 1.0 for s in std))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (x - np.asarray(self.mean)) / np.asarray(self.std)

    def to_json(self) -> dict:
        return {"features": list(FEATURES), **asdict(self)}

    @classmethod
    def from_json(cls, obj: dict) -> StyleNorm:
        if obj.get("features") != list(FEATURES):
            raise ValueError(f"style normalisation for features {obj.get('features')}, expected {list(FEATURES)}")
        return cls(tuple(obj["mean"]), tuple(obj["std"]))
