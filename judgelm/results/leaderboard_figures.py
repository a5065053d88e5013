"""Figures of a model leaderboard (PNG, matplotlib's Agg backend so they render on nodes without a display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from judgelm.rundir import replaced_atomically


def _ratings(ax, rows: list[dict[str, Any]]) -> None:
    rows = sorted(rows, key=lambda r: r["rating"])
    y = np.arange(len(rows))
    lo = [r["rating"] - r["rating_ci95"][0] if r["rating_ci95"][0] is not None else 0 for r in rows]
    hi = [r["rating_ci95"][1] - r["rating"] if r["rating_ci95"][1] is not None else 0 for r in rows]
    ax.errorbar([r["rating"] for r in rows], y, xerr=[lo, hi], fmt="o", capsize=3)
    ax.set_yticks(y, [r["model"] for r in rows])
    ax.set_xlabel("Bradley–Terry rating (Elo scale), 95 % bootstrap interval")


def _heatmap(ax, matrix: dict[str, Any]) -> None:
    values = np.array([[np.nan if v is None else v for v in row] for row in matrix["values"]], dtype=float)
    im = ax.imshow(values, vmin=0, vmax=100, cmap="RdBu")
    n = len(matrix["models"])
    ax.set_xticks(range(n), matrix["models"], rotation=45, ha="right")
    ax.set_yticks(range(n), matrix["models"])
    for i, j in zip(*np.nonzero(np.isfinite(values))):
        ax.text(j, i, f"{values[i, j]:.0f}", ha="center", va="center", fontsize=8)
    ax.figure.colorbar(im, ax=ax, label="win rate of row vs column (%)")


def _length(ax, rows: list[dict[str, Any]], baseline: str | None) -> None:
    rows = [r for r in rows if r["model"] != baseline and r["avg_length"] is not None and r["win_rate"] is not None]
    x = [r["avg_length"] for r in rows]
    ax.scatter(x, [r["win_rate"] for r in rows], label="win rate")
    if any(r.get("length_controlled_winrate") is not None for r in rows):
        ax.scatter(x, [r["length_controlled_winrate"] for r in rows], marker="x", label="length-controlled")
        ax.legend()
    for r in rows:
        ax.annotate(r["model"], (r["avg_length"], r["win_rate"]), fontsize=7)
    ax.set_xlabel("average answer length (characters)")
    ax.set_ylabel("win rate (%)")


def write_figures(run_dir: Path, leaderboard: dict[str, Any]) -> list[str]:
    """Write the figures of every pairwise board; returns their file names (relative to ``run_dir``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for group, board in leaderboard["boards"].items():
        if group == "checklist":  # RocketEval: the figures of the board its preferences make
            board = board.get("pairwise") or {}
        if group.startswith("single") or not board.get("rows"):
            continue
        plots = [("ratings", lambda ax, board=board: _ratings(ax, board["rows"])),
                 ("win_rate_vs_length", lambda ax, board=board: _length(ax, board["rows"], board.get("baseline")))]
        if "win_rate_matrix" in board:
            plots.append(("win_rate_matrix", lambda ax, board=board: _heatmap(ax, board["win_rate_matrix"])))
        for kind, draw in plots:
            fig, ax = plt.subplots(figsize=(7, 1.5 + 0.4 * len(board["rows"])))
            draw(ax)
            ax.set_title(f"{kind.replace('_', ' ')} ({group.replace('_', ' ')})")
            fig.tight_layout()
            name = f"leaderboard_{kind}_{group}.png"
            with replaced_atomically(run_dir / name) as tmp:  # a merge killed while drawing leaves the old figure
                fig.savefig(tmp, dpi=100)
            plt.close(fig)
            names.append(name)
    return names
