"""Markdown for what the merge says about trust in the verdicts: the policy and draws (``metrics["verdicts"]``),
the panel (``metrics["panel"]``) and a calibration transfer (``judgelm.scoring.calibration.transfer``)."""

from __future__ import annotations

from typing import Any

_HEADLINE = (("agreement", "agreement", True), ("kappa", "kappa", False), ("consistency", "consistency", True),
             ("pearson", "Pearson r", False), ("spearman", "Spearman rho", False),
             ("parse_failure_rate", "parse failures", True))


def _cell(v: Any, pct: bool) -> str:
    if v is None:
        return "—"
    return f"{100 * v:.2f}" if pct else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _table(first: str, rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    cols = [(k, t, p) for k, t, p in _HEADLINE if any(r.get(k) is not None for _, r in rows)]
    return [f"| {first} | " + " | ".join(t for _, t, _ in cols) + " |", "|---|" + "---|" * len(cols)] + [
        f"| {name} | " + " | ".join(_cell(r.get(k), p) for k, _, p in cols) + " |" for name, r in rows]


def format_draws(v: dict[str, Any]) -> list[str]:
    """The verdict policy, the re-asks' effect on parse failures, agreement between samples and metrics vs k."""
    lines = [f"Verdict policy: {v['policy']} over {v['samples']} sample(s) per unit."]
    r = v.get("retries")
    if r:
        lines.append(f"Parse failures: {_cell(r['failure_rate_before'], True)} % before re-asks, "
                     f"{_cell(r['failure_rate_after'], True)} % after ({r['re_asks']} re-asks of "
                     f"{r['units_re_asked']} units).")
    agree = v.get("sample_agreement")
    if agree:
        lines.append("Agreement between a unit's samples: " + ", ".join(
            f"{k.replace('_', ' ')} {_cell(x, False)}" for k, x in agree.items()) + ".")
    if v.get("by_k"):
        lines += ["", *_table("samples k", [(str(row["k"]), row) for row in v["by_k"]])]
    return lines


def format_panel(p: dict[str, Any]) -> list[str]:
    """Each judge's and the panel's headline metrics on the common units, and the agreement between judges."""
    rows = list(p["judges"].items()) + [(k, v) for k, v in p.items() if k.startswith("panel:")]
    a = p["agreement"]
    lines = [f"Panel of {len(p['judges'])} judges on the {p['units']} units all of them judged:", "",
             *_table("judge", rows), ""]
    lines.append("Agreement between judges: " + ", ".join(
        f"{k.replace('_', ' ')} {_cell(x, False)}" for k, x in a.items() if not isinstance(x, dict)) + ".")
    for pair, x in (a.get("pairwise_agreement") or {}).items():
        lines.append(f"- {pair}: same label on {_cell(x, True)} % of units")
    return lines


def format_trust(m: dict[str, Any]) -> str:
    """The sections that apply to a run's metrics (none for one judge, one sample, no re-asks)."""
    v = m.get("verdicts") or {}
    sections = []
    if v.get("samples", 1) > 1 or v.get("retries") or v.get("policy", "primary") != "primary":
        sections.append(format_draws(v))
    if m.get("panel"):
        sections.append(format_panel(m["panel"]))
    return "".join("\n" + "\n".join(s) + "\n" for s in sections)
