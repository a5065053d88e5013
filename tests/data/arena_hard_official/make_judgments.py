"""Writes judgments.jsonl: synthetic Arena-Hard-Auto judgments of the shipped v0.1 answers of gpt-4-0613 and
gpt-3.5-turbo-0125 against gpt-4-0314, in the authors' model_judgment format (``uid``, ``category``, ``judge``,
``model``, ``baseline``, ``games``: game 1 with the baseline as Assistant A, game 2 swapped, each ``{"score": label}``
or ``null`` for a verdict that did not parse).

The labels are drawn, with a fixed seed, from P(model better) = sigmoid(a_model + 3 x) where x is the answers'
relative length difference in characters, so that the battles carry a real length effect for style control to
remove; one game in 40 is unparsed. Run from the repository root:
``python tests/data/arena_hard_official/make_judgments.py``.
"""

import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
ANSWERS = ROOT / "data/evaluation/arena_hard/arena-hard-v0.1/model_answer"
BASELINE, MODELS = "gpt-4-0314", {"gpt-4-0613": 0.2, "gpt-3.5-turbo-0125": -0.7}


def answers(model: str) -> dict[str, str]:
    rows = map(json.loads, (ANSWERS / f"{model}.jsonl").read_text().splitlines())
    return {r["uid"]: r["messages"][-1]["content"]["answer"] for r in rows}


def label(rng: np.random.RandomState, p_first: float, first: str, second: str) -> str | None:
    """A verdict for the answer shown as ``first`` (A or B) against ``second``."""
    if rng.rand() < 1 / 40:
        return None
    u = rng.rand()
    strong = rng.rand() < 0.3
    if u < 0.12:
        return rng.choice([f"{first}={second}", f"{second}={first}"])
    return (f"{first}>>{second}" if strong else f"{first}>{second}") if u < 0.12 + 0.88 * p_first else \
        (f"{second}>>{first}" if strong else f"{second}>{first}")


def main() -> None:
    rng = np.random.RandomState(2024)
    base = answers(BASELINE)
    out = []
    for model, a in MODELS.items():
        mine = answers(model)
        for uid in base:
            x = (len(mine[uid]) - len(base[uid])) / (len(mine[uid]) + len(base[uid]))
            p = 1 / (1 + np.exp(-(a + 3 * x)))
            g1, g2 = label(rng, 1 - p, "A", "B"), label(rng, p, "A", "B")  # A is the baseline in game 1
            out.append({"uid": uid, "category": "arena-hard-v0.1", "judge": "synthetic", "model": model,
                        "baseline": BASELINE, "games": [None if g is None else {"score": g} for g in (g1, g2)]})
    path = Path(__file__).parent / "judgments.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in out))


if __name__ == "__main__":
    main()
