"""Reports: the leaderboard of a benchmark run, and ``report.md`` with PNG figures for one run or several side by side.

A *run* here is a judging or import run directory (a verdict store + ``metrics.json``) or a benchmark directory
(``benchmark.json`` and one judging run per prompt mode below it). Everything is read from ``metrics.json`` except
the score distributions, which need every verdict and come from the store.

Figures, per judging run: the confusion matrix (truth × verdict, original order, without reference), the judge's
scores per ground-truth label (score difference for pairs, the score for single-answer grading), the per-benchmark
and per-subset leaderboard bars with their 95 % intervals, position bias per benchmark (consistent pairs, flips
towards the first slot, towards the second) and, when the run stored score-token log-probabilities, the reliability
curve. Several runs add a comparison chart of every leaderboard row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from judgelm.judging.store import NO_LABEL, VerdictStore
from judgelm.results.merge import align_orders
from judgelm.results.tables import TINY_NOTE, format_leaderboard, format_table, leaderboard_rows
from judgelm.rundir import RunDir

BENCHMARK_FILE = "benchmark.json"
LEADERBOARD_MD = "leaderboard.md"
LEADERBOARD_JSON = "leaderboard.json"
_LABEL_NAMES = {1: "answer 1 better", 0: "tie", -1: "answer 2 better"}


@dataclass(frozen=True)
class JudgedRun:
    """One judging (or import) run, with a short name for figure files and headings."""

    name: str
    dir: RunDir

    def metrics(self) -> dict[str, Any]:
        return json.loads(self.dir.metrics.read_text())


def judged_runs(path: str | Path) -> list[JudgedRun]:
    """The judging runs of a run directory (itself) or of a benchmark directory (one per prompt mode)."""
    path = Path(path)
    spec = path / BENCHMARK_FILE
    if spec.is_file():
        runs = json.loads(spec.read_text())["runs"]
        return [JudgedRun(mode, RunDir(path / sub)) for mode, sub in runs.items()]
    if RunDir(path).store.exists():
        return [JudgedRun(path.name, RunDir(path))]
    raise FileNotFoundError(f"{path} is neither a judging run (no verdict store) nor a benchmark run "
                            f"(no {BENCHMARK_FILE})")


def run_rows(path: str | Path) -> list[dict[str, Any]]:
    """Leaderboard rows of a run or benchmark run, in the suite's order of benchmarks when there is one."""
    path = Path(path)
    rows = [r for run in judged_runs(path) for r in leaderboard_rows(run.metrics())]
    spec = path / BENCHMARK_FILE
    if spec.is_file():
        order = json.loads(spec.read_text())["benchmarks"]
        rank = {name.partition("@")[0].partition(":")[0]: i for i, name in enumerate(order)}
        rows.sort(key=lambda r: (rank.get(r["benchmark"], len(rank)), r.get("reference", False)))
    return rows


def _note(path: str | Path) -> str | None:
    return TINY_NOTE if any(run.metrics().get("note") for run in judged_runs(path)) else None


def write_leaderboard(path: str | Path) -> str:
    """Write ``leaderboard.md`` and ``leaderboard.json`` into a benchmark directory; returns the Markdown."""
    path = Path(path)
    rows = run_rows(path)
    model = next((run.metrics().get("model") for run in judged_runs(path)), None)
    text = format_leaderboard(rows, f"Leaderboard: {model}", _note(path))
    (path / LEADERBOARD_MD).write_text(text)
    (path / LEADERBOARD_JSON).write_text(json.dumps({"model": model, "rows": rows, "note": _note(path)}, indent=2)
                                         + "\n")
    return text


# --- figures ------------------------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on cluster nodes
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def confusion_figure(m: dict[str, Any], path: Path) -> Path | None:
    group = m["groups"].get("without_reference") or m["groups"].get("with_reference")
    if not group or "confusion" not in group:
        return None
    plt = _plt()
    cm = np.array(group["confusion"])
    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.imshow(cm, cmap="Blues")
    names = ["answer 2", "tie", "answer 1"]
    ax.set_xticks(range(3), names)
    ax.set_yticks(range(3), names)
    ax.set_xlabel("judge verdict (original order)")
    ax.set_ylabel("ground truth")
    for i in range(3):
        for j in range(3):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title("Confusion matrix")
    return _save(fig, path)


def score_figure(run: JudgedRun, mode: str, path: Path) -> Path | None:
    store = VerdictStore(run.dir.store)
    a = store.columns()
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if mode == "pair":
        seq, _ = align_orders(a, ~a.with_reference)
        gt = a.label[a.record[seq]].astype(int)
        diff = a.scores[seq, 0] - a.scores[seq, 1]
        groups = [(label, diff[(gt == label) & np.isfinite(diff)]) for label in (1, 0, -1)]
        groups = [(label, d) for label, d in groups if len(d)]
        plotted = bool(groups)
        if plotted:  # side by side and as shares, so a small label (ties) stays visible next to a large one
            ax.hist([d for _, d in groups], bins=np.arange(-10.5, 11.5, 1),
                    weights=[np.full(len(d), 1 / len(d)) for _, d in groups],
                    label=[f"truth: {_LABEL_NAMES[label]} ({len(d)})" for label, d in groups])
        ax.set_ylabel("share of the label's pairs")
        ax.set_xlabel("judge's score 1 − score 2 (parsed verdicts, original order)")
        no_gt = int((gt == NO_LABEL).sum())
        ax.set_title("Score difference per ground-truth label" + (f" ({no_gt} pairs without truth)" if no_gt else ""))
    else:
        done = np.flatnonzero(a.done)
        x, gt = a.scores[done, 0], a.gt_scores[a.record[done], 0]
        keep = np.isfinite(x) & np.isfinite(gt)
        levels = sorted(set(np.round(gt[keep]).astype(int)))
        plotted = bool(levels)
        if plotted:
            ax.boxplot([x[keep][np.round(gt[keep]) == v] for v in levels], tick_labels=[str(v) for v in levels])
        ax.set_xlabel("ground-truth score (rounded mean)")
        ax.set_ylabel("judge's score")
        ax.set_title(f"Judge's score per ground-truth score ({int(keep.sum())} parsed of {len(done)})")
    if not plotted:
        ax.text(0.5, 0.5, "no parsed verdicts with ground truth", ha="center", va="center", transform=ax.transAxes)
    elif mode == "pair":
        ax.legend(fontsize=8)
    return _save(fig, path)


def subset_figure(rows: list[dict[str, Any]], path: Path, title: str = "Leaderboard") -> Path | None:
    if not rows:
        return None
    plt = _plt()
    labels = [f"{r['benchmark']}/{r['subset']}" + (" (ref)" if r.get("reference") else "")
              + (" (expected)" if "expected" in r["metric"] else "") for r in rows]
    scores = np.array([np.nan if r["score"] is None else r["score"] for r in rows], dtype=float)
    lo = np.array([np.nan if r["ci95"][0] is None else r["ci95"][0] for r in rows], dtype=float)
    hi = np.array([np.nan if r["ci95"][1] is None else r["ci95"][1] for r in rows], dtype=float)
    err = np.nan_to_num(np.vstack([scores - lo, hi - scores]).clip(min=0))
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.2))
    y = np.arange(len(rows))
    ax.barh(y, np.nan_to_num(scores), xerr=err, color=["tab:purple" if r["metric"].startswith("pearson") else "tab:blue"
                                                          for r in rows], alpha=0.8)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(min(0.0, float(np.nanmin(lo)) if np.isfinite(lo).any() else 0.0), 1.0)
    ax.set_xlabel("score (accuracy / agreement; purple: Pearson r) with bootstrap 95 % CI")
    ax.set_title(title)
    return _save(fig, path)


def position_figure(m: dict[str, Any], path: Path) -> Path | None:
    entries = [(f"{name}" + (" (ref)" if group == "with_reference" else ""), res["swap"])
               for group, results in m.get("benchmarks", {}).items() for name, res in results.items() if "swap" in res]
    if not entries:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(entries) + 1.8))
    y = np.arange(len(entries))
    cons = np.array([e["consistency"] for _, e in entries])
    first = np.array([e["prefer_before_rate"] for _, e in entries])
    second = np.array([e["prefer_after_rate"] for _, e in entries])
    ax.barh(y, cons, color="tab:green", label="same verdict in both orders")
    ax.barh(y, first, left=cons, color="tab:orange", label="changed towards the 1st slot")
    ax.barh(y, second, left=cons + first, color="tab:red", label="changed towards the 2nd slot")
    ax.set_yticks(y, [name for name, _ in entries], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of pairs")
    ax.set_title("Position bias: what happens when the answers are swapped")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)
    return _save(fig, path)


def reliability_figure(m: dict[str, Any], path: Path) -> Path | None:
    curves = [(name, g["calibration"]) for name, g in m["groups"].items() if g.get("calibration", {}).get("bins")]
    if not curves:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    for name, cal in curves:
        bins = cal["bins"]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                label=f"{name.replace('_', ' ')} (ECE {100 * cal['ece']:.1f}, n={cal['n']})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("judge's confidence in its verdict")
    ax.set_ylabel("share of verdicts that are correct")
    ax.set_title("Reliability curve")
    ax.legend(fontsize=7)
    return _save(fig, path)


def samples_figure(m: dict[str, Any], path: Path) -> Path | None:
    """The headline metrics against the number of samples each verdict is chosen from (``metrics["verdicts"]``)."""
    by_k = (m.get("verdicts") or {}).get("by_k")
    if not by_k:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    ks = [row["k"] for row in by_k]
    for key in ("agreement", "consistency", "kappa", "pearson", "spearman"):
        if any(row.get(key) is not None for row in by_k):
            ax.plot(ks, [row.get(key) for row in by_k], marker="o", label=key)
    ax.set_xticks(ks)
    ax.set_xlabel(f"samples per unit ({m['verdicts']['policy']} policy)")
    ax.set_title("Metrics against the number of samples")
    ax.legend(fontsize=7)
    return _save(fig, path)


def comparison_figure(names: list[str], tables: list[list[dict[str, Any]]], path: Path) -> Path | None:
    keys = _row_keys(tables)
    if not keys:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(keys) * max(1, len(names)) / 2 + 1.5))
    y = np.arange(len(keys))
    height = 0.8 / len(names)
    for k, (name, rows) in enumerate(zip(names, tables)):
        by_key = {_key(r): r["score"] for r in rows}
        ax.barh(y + k * height, [by_key.get(key) or 0.0 for key in keys], height=height, label=name)
    ax.set_yticks(y + 0.4 - height / 2, [" / ".join(key[:2]) + (" (ref)" if key[2] else "")
                                         + (" (expected)" if "expected" in key[3] else "") for key in keys], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("score")
    ax.set_title("Runs side by side")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _key(row: dict[str, Any]) -> tuple[str, str, bool, str]:
    return row["benchmark"], row["subset"], bool(row.get("reference")), row["metric"]


def _row_keys(tables: list[list[dict[str, Any]]]) -> list[tuple[str, str, bool, str]]:
    keys: list[tuple[str, str, bool, str]] = []
    for rows in tables:
        for r in rows:
            if _key(r) not in keys:
                keys.append(_key(r))
    return keys


# --- the report ---------------------------------------------------------------------------------------------------

_DEFINITIONS = """## How to read this

- **Agreement** (JudgeLM): share of pairs where the judge's verdict on the original order equals the truth; a
  parse failure is a tie. **Precision/Recall/F1**: macro over {answer 1, tie, answer 2}, as scikit-learn computes them.
- **Benchmark rows** use each benchmark's own protocol (`judgelm/scoring/protocols.py`): LLMBar and MT-Bench pairs
  average the accuracy of both orders; JudgeBench counts a pair correct only when its two verdicts together pick the
  correct answer; RewardBench scores a tie as 0.5 and weights subsets into sections with its official counts;
  Prometheus reports Pearson's r with GPT-4's mean rubric score.
- **95 % CI**: percentile bootstrap over pairs (1,000 resamples, fixed seed), the whole aggregate recomputed.
- **Consistency**: share of pairs with the same verdict in both orders. **Position bias**: among changed verdicts,
  which slot gained. **Length bias**: how often the longer answer wins for the judge versus for the truth.
- **Cohen's kappa**: agreement corrected for chance. **Agreement without ties**: over pairs where neither side says tie.
- **Calibration** (when log-probabilities were stored): the judge's probability for its own verdict, from its
  score-token distributions; the reliability curve bins it against correctness, ECE is the weighted gap.

- **Samples and panels** (when a run drew several verdicts per unit or has panel judges): the verdict policy that
  chose each unit's verdict, the agreement between a unit's samples, the metrics for the first k samples, and each
  panel judge's metrics with Fleiss' kappa and Krippendorff's alpha between judges.

Formulas: `judgelm/scoring/metrics.py`, `judgelm/scoring/calibration.py`, `judgelm/scoring/verdict_policy.py`,
`judgelm/scoring/agreement.py`.
"""


def _figures_for(run: JudgedRun, prefix: str, fig_dir: Path) -> list[tuple[str, Path]]:
    m = run.metrics()
    mode = m.get("mode") or "pair"
    out = [("Confusion matrix", confusion_figure(m, fig_dir / f"{prefix}confusion.png")),
           ("Scores per ground-truth label", score_figure(run, mode, fig_dir / f"{prefix}scores.png")),
           ("Benchmarks and subsets", subset_figure(leaderboard_rows(m), fig_dir / f"{prefix}subsets.png")),
           ("Position bias", position_figure(m, fig_dir / f"{prefix}position_bias.png")),
           ("Reliability curve", reliability_figure(m, fig_dir / f"{prefix}reliability.png")),
           ("Metrics against samples per unit", samples_figure(m, fig_dir / f"{prefix}samples.png"))]
    return [(title, p) for title, p in out if p is not None]


def write_report(paths: list[str | Path], out_dir: str | Path) -> Path:
    """``report.md`` and ``figures/*.png`` in ``out_dir`` for one run (or benchmark run), or a comparison of several."""
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    names = [Path(p).name for p in paths]
    lines = [f"# Judge report: {', '.join(names)}", ""]
    notes = [(name, _note(p)) for name, p in zip(names, paths) if _note(p)]
    if notes:
        lines += [f"> {name}: {note}" if len(paths) > 1 else f"> {note}" for name, note in notes] + [""]
    tables = [run_rows(p) for p in paths]
    if len(paths) > 1:
        lines += ["## Runs side by side", "", _comparison_table(names, tables), ""]
        fig = comparison_figure(names, tables, fig_dir / "comparison.png")
        if fig:
            lines += [f"![Runs side by side](figures/{fig.name})", ""]
    for path, name, rows in zip(paths, names, tables):
        heading = "##" if len(paths) == 1 else "###"
        if rows:
            lines += [f"{heading} Leaderboard: {name}", "", format_leaderboard(rows), ""]
        runs = judged_runs(path)
        for run in runs:
            prefix = ("" if len(paths) == 1 else f"{name}-") + (f"{run.name}-" if len(runs) > 1 else "")
            m = run.metrics()
            lines += [f"{heading} Run {m.get('run')} ({m.get('mode') or 'pair'})", "", format_table(m), ""]
            lines += [f"![{title}](figures/{p.name})" for title, p in _figures_for(run, prefix, fig_dir)] + [""]
    lines.append(_DEFINITIONS)
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report


def _comparison_table(names: list[str], tables: list[list[dict[str, Any]]]) -> str:
    lines = ["| benchmark | subset | reference | metric | " + " | ".join(names) + " |",
             "|---|---|---|---|" + "---|" * len(names)]
    for key in _row_keys(tables):
        cells = []
        for rows in tables:
            r = next((r for r in rows if _key(r) == key), None)
            cells.append("—" if r is None or r["score"] is None else
                         (f"{r['score']:.3f}" if r["metric"].startswith("pearson") else f"{100 * r['score']:.2f}"))
        lines.append(f"| {key[0]} | {key[1]} | {'with' if key[2] else 'without'} | {key[3]} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)
