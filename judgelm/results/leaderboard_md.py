"""The model leaderboard as Markdown (``leaderboard.md`` and what ``make evaluate`` prints)."""

from __future__ import annotations

from typing import Any


def _num(v: Any, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, list):
        return "—" if None in v else "–".join(_num(x, digits) for x in v)
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(_num(v, 1 if isinstance(v, list) else 2) for v in row) + " |" for row in rows])


def turns_section(board: dict[str, Any], key: str, what: str) -> list[str]:
    """A conversation's turns side by side, as MT-Bench shows its first turn, second turn and average: ``key`` of
    every model per turn, and over all turns."""
    turns = board["turns"]
    per_turn = {t: {r["model"]: r.get(key) for r in turns[t]["rows"]} for t in turns}
    rows = [[r["model"]] + [per_turn[t].get(r["model"]) for t in turns] + [r.get(key)] for r in board["rows"]]
    header = ["model"] + [f"turn {t}" for t in turns] + ["all turns"]
    return ["", f"{what} per turn (each turn of a conversation judged on its own, the turns before it shown):",
            ""] + _table(header, rows)


def pairwise_section(board: dict[str, Any]) -> list[str]:
    if not board["rows"]:
        return [f"No ratings: {board.get('note', 'no comparisons')}."]
    cols = ["win_rate", "standard_error", "length_controlled_winrate", "discrete_win_rate", "n_wins", "n_wins_base",
            "n_draws", "n_total", "avg_length", "rating", "rating_ci95"]
    cols += [c for c in ("style_controlled_winrate", "style_controlled_rating", "style_controlled_rating_ci")
             if any(c in r for r in board["rows"])]
    lines = _table(["model"] + cols, [[r["model"]] + [r.get(c) for c in cols] for r in board["rows"]])
    if board.get("turns"):
        lines += turns_section(board, "win_rate", "Win rate")
        styled = [(c, what) for c, what in (("style_controlled_winrate", "Style-controlled win rate"),
                                            ("style_controlled_rating", "Style-controlled rating"))
                  if c in board["rows"][0]]
        if styled:
            lines += turns_section(board, *styled[0])
    if board.get("style_control"):
        lines += ["", style_note(board["style_control"])]
    if board.get("arena_hard"):
        lines += [""] + arena_hard_section(board["arena_hard"])
    if "win_rate_matrix" in board:
        wm = board["win_rate_matrix"]
        lines += ["", "Win rate of the row model against the column model:", ""]
        lines += _table([""] + wm["models"], [[m] + row for m, row in zip(wm["models"], wm["values"])])
    if board.get("by_category"):
        cats = board["by_category"]
        models = sorted({m for per in cats.values() for m in per})
        lines += ["", "Win rate per category:", ""]
        lines += _table(["category"] + models, [[c] + [cats[c].get(m) for m in models] for c in cats])
    if board.get("order_consistency"):
        lines += ["", "Order consistency of the judge (both orders give the same verdict):", ""]
        lines += _table(["pair", "consistency", "n"], [[k, v["consistency"], v["n"]]
                                                       for k, v in board["order_consistency"].items()])
    if board.get("reference"):
        lines += [""] + reference_section(board)
    return lines


def style_note(style: dict[str, Any]) -> str:
    coefs = ", ".join(f"{f} {c:+.3f}" for f, c in zip(style["fit"]["features"], style["fit"]["coefficients"]))
    frozen = f"; normalisation{' and coefficients' if style['frozen'] == 'all' else ''} frozen" if style["frozen"] \
        else ""
    return (f"Style control: Bradley–Terry over {style['battles']} comparisons with standardised length and markdown "
            f"differences as covariates (coefficients {coefs}{frozen}); `style_control.json` freezes it.")


def arena_hard_section(ah: dict[str, Any]) -> list[str]:
    """Arena-Hard-Auto's own leaderboard of a run judged with its profile."""
    if "rows" not in ah:
        return [f"Arena-Hard-Auto: {ah['note']}."]
    pct = round(100 * ah["level"])
    lines = [f"Arena-Hard-Auto (baseline {ah['baseline']}; {ah['rounds']} bootstrap rounds, {pct} % intervals; "
             f"Elo v0.1 with 95 %):", ""]
    cols = ["score", "score_ci", "style_controlled_score", "style_controlled_score_ci", "elo_v01", "elo_v01_ci",
            "battles", "questions", "avg_tokens"]
    lines += _table(["model"] + cols, [[r["model"]] + [r.get(c) for c in cols] for r in ah["rows"]])
    coefs = ", ".join(f"{f} {c:+.3f}" for f, c in ah["style_coefficients"].items())
    return lines + ["", f"Questions left out for an unparsed verdict: {ah['questions_dropped_unparsed']}; "
                        f"style coefficients: {coefs}."]


def reference_section(board: dict[str, Any]) -> list[str]:
    """Our ranking next to the reference judge's, the rank correlations and the pairs whose order flips."""
    ref = board["reference"]
    ours = {r["model"]: r.get(ref["key"]) for r in board["rows"]}
    models = sorted(ref["models"], key=lambda m: -ref["scores"][m])
    lines = [f"Against {ref['name']} on the same answers ({ref['key']}, models ranked by {ref['name']}):", ""]
    lines += _table(["model", ref["name"], "this judge"], [[m, ref["scores"][m], ours.get(m)] for m in models])
    flips = ", ".join(f"{a} > {b} here" for a, b in ref["flips"]) or "none"
    return lines + ["", f"Spearman {_num(ref['spearman'])}, Kendall {_num(ref['kendall'])} over {len(models)} "
                        f"models; pairs whose order flips: {flips}."]


def single_section(board: dict[str, Any]) -> list[str]:
    lines = _table(["model", "mean_score", "score_ci95", "n_total", "parse_failures"],
                   [[r["model"], r["mean_score"], r["score_ci95"], r["n_total"], r["parse_failures"]]
                    for r in board["rows"]])
    if board.get("turns"):
        lines += turns_section(board, "mean_score", "Mean score")
    if board.get("by_category"):
        cats = board["by_category"]
        models = [r["model"] for r in board["rows"]]
        lines += ["", "Mean score per category:", ""]
        lines += _table(["category"] + models, [[c] + [cats[c].get(m) for m in models] for c in cats])
    return lines


def checklist_section(board: dict[str, Any]) -> list[str]:
    """RocketEval's predicted scores (1-10) and the pairwise board of the preferences they give."""
    cols = ["mean_score", "score_ci95", "n_questions", "n_scored", "items_without_yes_no", "reference_scores"]
    lines = _table(["model"] + cols, [[r["model"]] + [r.get(c) for c in cols] for r in board["rows"]])
    fitted = (f"fitted on reference scores for {board['supervised_questions']} questions (mean weight "
              f"{_num(board['mean_predictor_weight'])})" if board["supervised_questions"] else
              "the plain average (no reference scores)")
    lines += ["", f"RocketEval over {board['questions']} questions: {board['units_with_probability']} of "
                  f"{board['units']} item gradings had Yes or No among the judge's top tokens; predictor: {fitted}."]
    if board.get("pairwise"):
        lines += ["", f"Preferences from these scores (a tie within {board['tie_margin']}):", ""]
        lines += pairwise_section(board["pairwise"])
    return lines


def format_leaderboard(lb: dict[str, Any]) -> str:
    base = f", baseline {lb['baseline']}" if lb.get("baseline") else ""
    lines = [f"# Model leaderboard: run {lb.get('run')}, judge {lb.get('judge')}, pairing {lb.get('pairing')}{base}"]
    for name, board in lb["boards"].items():
        lines += ["", f"## {name.replace('_', ' ')}", ""]
        if name.startswith("single"):
            lines += single_section(board)
        elif name == "checklist":
            lines += checklist_section(board)
        else:
            lines += pairwise_section(board)
    if lb.get("figures"):
        lines += ["", "Figures: " + ", ".join(f"[{f}]({f})" for f in lb["figures"])]
    if lb.get("note"):
        lines += ["", f"Note: {lb['note']}"]
    if lb.get("models_note"):
        lines += ["", f"Note: {lb['models_note']}"]
    return "\n".join(lines) + "\n"
