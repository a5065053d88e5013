"""What the merge says about a panel (``judgelm.judging.panel`` fills it): each judge's verdicts chosen from its own
draws by the run's verdict policy, and the agreement between judges on the units every judge judged."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from judgelm.data.verdicts import win_array
from judgelm.judging.panel import own_name
from judgelm.judging.store import NOT_ASKED, VerdictStore
from judgelm.scoring.agreement import category_counts, fleiss_kappa, krippendorff_alpha
from judgelm.scoring.verdict_policy import Draws, choose, samples_of, status_of


@dataclass(frozen=True)
class JudgeVerdicts:
    """One panel judge's verdicts, one row per unit of the store."""

    name: str
    scores: np.ndarray
    status: np.ndarray
    judged: np.ndarray  # bool: done, with a verdict (parsed or not)



def read_panel(store: VerdictStore, scores: np.ndarray, status: np.ndarray, done: np.ndarray,
               policy: str = "primary") -> list[JudgeVerdicts]:
    """The run's own judge (its verdicts as the merge chose them) and every panel judge of the store, each chosen
    from its own draws by ``policy`` (``expected`` takes a panel judge's primary verdict: the merge derives
    log-probability confidence for the run's own judge only)."""
    out = [JudgeVerdicts(own_name(store), scores, status, done)]
    for name in store.judges():
        view = store.judge(name)
        st = view.verdicts("status")
        chosen = choose("primary" if policy == "expected" else policy,
                        samples_of(Draws.read(view, view.verdicts("scores"), st)))
        out.append(JudgeVerdicts(name, chosen, status_of(chosen, st), view.done() & (st != NOT_ASKED)))
    return out


def panel_agreement(judges: list[JudgeVerdicts], units: np.ndarray) -> dict[str, object]:
    """Agreement between the judges on ``units``: for pairs, Fleiss' kappa and Krippendorff's nominal alpha over
    the verdict labels (a failed parse is a tie, as in the metrics) and the share of units each two judges label
    alike; for graded scores, Krippendorff's interval alpha of the first score."""
    if judges[0].scores.shape[1] != 2:
        return {"krippendorff_alpha_interval": krippendorff_alpha(np.stack([j.scores[units, 0] for j in judges]),
                                                                  "interval")}
    labels = np.stack([win_array(j.scores[units]) for j in judges], axis=1)
    pairs = {f"{a.name} | {b.name}": float((labels[:, i] == labels[:, k]).mean()) if len(units) else None
             for i, a in enumerate(judges) for k, b in enumerate(judges) if i < k}
    kappa = fleiss_kappa(category_counts(labels, np.array([-1, 0, 1]))) if len(units) else None
    return {"fleiss_kappa": kappa, "krippendorff_alpha_nominal": krippendorff_alpha(labels.T),
            "pairwise_agreement": pairs}
