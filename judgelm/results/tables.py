"""Presentation of a run's metrics: the Markdown metrics table and the benchmark leaderboard.

The merge computes (``judgelm.results.merge``); this module only turns its ``metrics.json`` dictionaries into text,
so the same tables come out of a fresh merge, of ``make report`` and of an imported run.
"""

from __future__ import annotations

from typing import Any

from judgelm.results.trust_tables import format_trust

TINY_NOTE = ("These are the metrics of a tiny judge (well under 100M parameters) trained on this machine: they "
             "prove that the pipeline works end to end, not that the judge is any good.")

_ROWS = (("agreement", "Agreement", True), ("precision", "Precision", True), ("recall", "Recall", True),
         ("f1", "F1", True), ("consistency", "Consistency", True), ("prefer_before_rate", "Prefer 1st slot", True),
         ("prefer_after_rate", "Prefer 2nd slot", True), ("delta_bias", "Delta bias", True),
         ("total_bias", "Total bias", True), ("agreement_swapped", "Agreement (swapped order)", True),
         ("parse_failure_rate", "Parse failures", True), ("total_num", "Pairs scored", False),
         ("pairs_without_ground_truth", "Pairs without ground truth", False),
         ("prompt_too_long", "Units rejected (prompt too long)", False),
         ("pairs_dropped_unjudged", "Pairs dropped (a unit not judged)", False),
         ("truncated_prompts", "Units with truncated prompts", False), ("units_done", "Units judged", False),
         ("mean_score", "Mean score", False), ("agreement_ci95", "Agreement 95 % CI (bootstrap)", True),
         ("kappa", "Cohen's kappa", False), ("agreement_without_ties", "Agreement without ties", True),
         ("flip_to_first_share", "Flips towards the 1st slot", True),
         ("longer_wins_judge", "Longer answer wins (judge)", True),
         ("longer_wins_truth", "Longer answer wins (truth)", True), ("score_pearson", "Score Pearson r", False),
         ("score_spearman", "Score Spearman rho", False), ("pearson", "Pearson r", False),
         ("spearman", "Spearman rho", False), ("kendall", "Kendall tau", False),
         ("calibration.ece", "Calibration error (ECE)", True),
         ("calibration.mean_confidence", "Mean confidence", True),
         ("calibration.agreement_expected_score", "Agreement (expected scores)", True),
         ("calibration.pearson_expected_score", "Pearson r (expected score)", False))


def _get(group: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        group = group.get(part) if isinstance(group, dict) else None
    return group


def _cell(v: Any, pct: bool) -> str:
    if v is None:
        return "—"
    if isinstance(v, list):
        return "—" if all(x is None for x in v) else "–".join(_cell(x, pct) for x in v)
    if pct:
        return f"{100 * v:.2f}"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def data_line(notes: dict[str, Any]) -> str:
    """What the data held that was skipped or is unusual, in words (empty when nothing was)."""
    said = [f"{notes['rejected_records']} invalid records skipped (rejects.jsonl)" if notes.get("rejected_records")
            else "", f"{notes['empty_answers']} empty answers judged as given" if notes.get("empty_answers") else "",
            "record ids made from line numbers (the data has none)" if notes.get("ids_from_lines") else ""]
    return "; ".join(x for x in said if x)


def format_table(m: dict[str, Any]) -> str:
    """A Markdown table, percentages ×100 as in the JudgeLM paper."""
    groups = m["groups"]
    names = list(groups)
    notes = data_line(m.get("data_notes", {}))
    lines = [f"Run {m.get('run')}: model {m.get('model')}, data {m.get('data')}, {m['units']} units"
             + ("" if m["complete"] else f" — PARTIAL: {m['missing_units']} units missing")
             + (f"\nData: {notes}" if notes else ""), "",
             "| metric | " + " | ".join(n.replace("_", " ") for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for key, title, pct in _ROWS:
        if all(_get(g, key) is None for g in groups.values()):
            continue
        lines.append(f"| {title} | " + " | ".join(_cell(_get(groups[n], key), pct) for n in names) + " |")
    if m.get("usage"):
        u = m["usage"]
        lines += ["", f"Server usage: {u['requests']} requests ({u['retries']} retries), {u['prompt_tokens']} prompt + "
                      f"{u['completion_tokens']} completion tokens"
                      + (f", ${u['cost_usd']:.2f}" if u["cost_usd"] else "")]
    if m.get("answers_from_cache") is not None:
        lines += ["", f"{m['answers_from_cache']} of {m['answers']} answers from the answer cache, "
                      f"{m['answers'] - m['answers_from_cache']} generated."]
    if m.get("units_from_cache") is not None:
        lines += ["", f"{m['units_from_cache']} of {m['units']} units from the verdict cache, "
                      f"{m['units'] - m['units_from_cache']} judged."]
    lost = m.get("verdict_cache_unreadable")
    if lost:
        lines += ["", f"{lost['files']} unreadable verdict-cache file{'s' if lost['files'] > 1 else ''} set aside "
                      f"({lost['entries']} entries lost, their units judged): see .verdict-cache/unreadable/."]
    if m.get("note"):
        lines += ["", f"Note: {m['note']}"]
    return "\n".join(lines) + "\n" + format_trust(m)


def leaderboard_rows(m: dict[str, Any]) -> list[dict[str, Any]]:
    """The protocol rows of a run's metrics, in benchmark order."""
    return [row for group in m.get("benchmarks", {}).values() for result in group.values() for row in result["rows"]]


def format_leaderboard(rows: list[dict[str, Any]], title: str = "", note: str | None = None) -> str:
    """One Markdown table: every benchmark row with its protocol's headline, interval, size, consistency."""
    lines = ([f"## {title}", ""] if title else []) + [
        "| benchmark | subset | reference | metric | score | 95 % CI | n | consistency | parse failures |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pct = not r["metric"].startswith("pearson")
        lines.append(f"| {r['benchmark']} | {r['subset']} | {'with' if r.get('reference') else 'without'} | "
                     f"{r['metric']} | {_cell(r['score'], pct)} | {_cell(r['ci95'], pct)} | {r['n']} | "
                     f"{_cell(r.get('consistency'), True)} | {_cell(r.get('parse_failure_rate'), True)} |")
    if note:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"
