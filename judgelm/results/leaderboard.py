"""The model leaderboard of a run: built from its store, compared with a reference leaderboard, written to files.

``write_leaderboard(run_dir, store)`` (called by the merge for stores whose records name their models) writes
``leaderboard.json``, ``leaderboard.md`` and the figures. A store's ``evaluation`` attribute says how it was
paired (``pairing``, ``baseline``); a run's ``reference_leaderboard.json``, when present, is another judge's
leaderboard of the same answers (e.g. GPT-4 Turbo's imported verdicts), put side by side with rank correlations.

A board per reference mode (``without_reference``, ``with_reference``; one ``reference_where_available`` board when
every comparison was judged in one mode only, as MT-Bench judges math with the reference and the rest without).
With multi-turn conversations each board is over every turn (a turn is a comparison) and adds ``turns``: the
same columns per turn, as MT-Bench reports its first turn, second turn and average.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from judgelm.judging.store import VerdictStore
from judgelm.rundir import finite, write_text_atomic
from judgelm.scoring import ratings as lb
from judgelm.scoring.outcomes import Scores, comparisons, reference_modes, single_scores

LEADERBOARD_JSON = "leaderboard.json"
LEADERBOARD_MD = "leaderboard.md"
REFERENCE_JSON = "reference_leaderboard.json"
TINY_NOTE = ("The judge is the tiny judge trained on this machine: its ranking proves that the pipeline works end to "
             "end, not that the ranking is right.")


def pairwise_board(c: lb.Comparisons, baseline: str = "", n_boot: int = 200, seed: int = 0) -> dict[str, Any]:
    """Rows per model (columns: ``judgelm.scoring.ratings``), best win rate first, and the tables."""
    base = c.models.index(baseline) if baseline in c.models else None
    ratings, ci = lb.bradley_terry(c, base, n_boot, seed)
    lc = lb.length_controlled_winrates(c, base) if base is not None else {}
    n_base = len(np.unique(c.question)) if base is not None else 0
    rows = []
    for m, name in enumerate(c.models):
        # The baseline against itself, as AlpacaEval lists it: every question a draw.
        p = np.full(n_base, 0.5) if m == base else c.of_model(m)[0]
        rows.append({"model": name, **lb.head_to_head(p), "avg_length": lb.avg_length(c, m),
                     "length_controlled_winrate": lc.get(m), "rating": float(ratings[m]),
                     "rating_ci95": [float(x) for x in ci[m]]})
    rows.sort(key=lambda r: -(r["win_rate"] if r["win_rate"] is not None else -1))
    out: dict[str, Any] = {"baseline": baseline or None, "comparisons": len(c), "rows": rows,
                           "by_category": lb.by_category(c, base), "order_consistency": lb.order_consistency(c)}
    if base is None:
        out["win_rate_matrix"] = {"models": c.models, "values": lb.win_rate_matrix(c)}
    return out


def single_rows(s: Scores) -> list[dict[str, Any]]:
    """Mean single-answer score per model with its interval (parse failures left out), best first."""
    rows = []
    for m, name in enumerate(s.models):
        stats = lb.mean_with_interval(s.score[(s.model == m) & np.isfinite(s.score)])
        rows.append({"model": name, "mean_score": stats["mean"], "score_ci95": stats["ci95"],
                     "n_total": int((s.model == m).sum()),
                     "parse_failures": int(((s.model == m) & ~np.isfinite(s.score)).sum())})
    return sorted(rows, key=lambda r: -(r["mean_score"] if r["mean_score"] is not None else -1))


def single_board(s: Scores) -> dict[str, Any]:
    """``single_rows``, per category, and per turn for conversations."""
    rows = single_rows(s)
    cats = sorted(set(s.category.tolist()) - {""})
    by_cat = {cat: {name: lb.mean_with_interval(s.score[(s.category == cat) & (s.model == m)
                                                        & np.isfinite(s.score)])["mean"]
                    for m, name in enumerate(s.models)} for cat in cats} if len(cats) > 1 else {}
    out = {"rows": rows, "by_category": by_cat}
    turns = np.unique(s.turn)
    if len(turns) > 1:
        out["turns"] = {str(t + 1): {"rows": single_rows(s.subset(s.turn == t))} for t in turns}
    return out


def beside_reference(board: dict[str, Any], reference: dict[str, Any], key: str = "win_rate") -> dict[str, Any]:
    """The reference leaderboard's ``key`` per model next to ours, with their rank agreement (baseline left out:
    its row is a convention, not a result)."""
    base = board.get("baseline")
    ours = {r["model"]: r[key] for r in board["rows"] if r["model"] != base and r.get(key) is not None}
    theirs = {r["model"]: r[key] for r in reference["rows"] if r["model"] != base and r.get(key) is not None}
    return {"name": reference.get("judge", "reference"), "key": key, "scores": theirs,
            **lb.rank_agreement(ours, theirs)}


def build_leaderboard(store: VerdictStore, reference: dict[str, Any] | None = None, n_boot: int = 200,
                      seed: int = 0) -> dict[str, Any]:
    """The leaderboard of a model-evaluation store, one board per reference mode it judged."""
    ev = store.attrs.get("evaluation", {})
    out: dict[str, Any] = {"run": store.attrs.get("run"), "judge": store.attrs.get("model"),
                           "pairing": ev.get("pairing"), "baseline": ev.get("baseline"), "boards": {}}
    single = store.attrs.get("mode") == "single"
    for w in reference_modes(store):
        name = {False: "without_reference", True: "with_reference", None: "reference_where_available"}[w]
        if single:
            out["boards"]["single" if w is False else f"single_{name}"] = single_board(single_scores(store, w))
            continue
        base = ev.get("baseline") or ""
        board = pairwise_board(comparisons(store, w), base, n_boot, seed)
        if store.n_turns > 1:
            per_turn = {t + 1: comparisons(store, w, t) for t in range(store.n_turns)}
            board["turns"] = {str(t): {"rows": pairwise_board(c, base, n_boot, seed)["rows"]}
                              for t, c in per_turn.items() if len(c)}
        if reference is not None:
            board["reference"] = beside_reference(board, reference)
        out["boards"][name] = board
    if store.attrs.get("tiny_judge"):
        out["note"] = TINY_NOTE
    if store.attrs.get("tiny_models"):  # generated here by toy models (make evaluate MODELS=models/tiny-chat-*)
        out["models_note"] = (f"{', '.join(store.attrs['tiny_models'])}: toy models (under 100M parameters) built on "
                              "this machine; their rows prove that generation, judging and the leaderboard work end "
                              "to end, not that the models are any good.")
    return out


def first_rows(leaderboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a leaderboard's first board (the one a reference leaderboard is compared with)."""
    boards = list(leaderboard["boards"].values())
    return boards[0]["rows"] if boards else []


def write_leaderboard(run_dir: str | Path, store: VerdictStore) -> dict[str, Any]:
    """Write ``leaderboard.json``, ``leaderboard.md`` and the figures into ``run_dir``; returns the leaderboard."""
    from judgelm.results.leaderboard_figures import write_figures
    from judgelm.results.leaderboard_md import format_leaderboard

    run_dir = Path(run_dir)
    ref_path = run_dir / REFERENCE_JSON
    reference = None
    if ref_path.exists():
        ref = json.loads(ref_path.read_text())
        reference = {"judge": ref.get("judge"), "rows": first_rows(ref)}
    board = finite(build_leaderboard(store, reference))
    board["figures"] = write_figures(run_dir, board)
    write_text_atomic(run_dir / LEADERBOARD_JSON, json.dumps(board, indent=2) + "\n")
    write_text_atomic(run_dir / LEADERBOARD_MD, format_leaderboard(board))
    return board
