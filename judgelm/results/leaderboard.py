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
from omegaconf import OmegaConf

from judgelm.config import load_saved
from judgelm.data.pairing import item_index
from judgelm.judging.config import JudgeConfig, LeaderboardConfig
from judgelm.judging.store import TOP_IDS, TOP_LOGPROBS, VerdictStore
from judgelm.rundir import RunDir, finite, write_text_atomic
from judgelm.scoring import arena_hard as ah
from judgelm.scoring import checklist
from judgelm.scoring import ratings as lb
from judgelm.scoring.outcomes import Scores, arena_games, comparisons, reference_modes, single_scores
from judgelm.scoring.style import answer_features, battle_features

LEADERBOARD_JSON = "leaderboard.json"
LEADERBOARD_MD = "leaderboard.md"
REFERENCE_JSON = "reference_leaderboard.json"
STYLE_JSON = "style_control.json"
REFERENCE_SCORES = "reference_scores.jsonl"  # a strong judge's scores for RocketEval's predictor (launch/evaluate.py)
ARENA_HARD_PROFILES = ("arena-hard", "arena-hard-creative")
BOARD_NAMES = {False: "without_reference", True: "with_reference", None: "reference_where_available"}
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


def _triple(values: tuple[float, float, float], scale: float = 1.0) -> tuple[float, list[float]]:
    return values[0] * scale, [values[1] * scale, values[2] * scale]


def style_columns(c: lb.Comparisons, own: np.ndarray, other: np.ndarray, baseline: str, settings: LeaderboardConfig,
                  frozen: ah.StyleFit | None) -> dict[str, Any]:
    """The style-controlled rating of every model of a pairwise board (``judgelm.scoring.arena_hard``): each
    comparison a battle of the slot-2 model against the slot-1 model with the judge's preference as its soft outcome,
    the answers' style features (``own``: slot 2's, ``other``: slot 1's, per comparison) as covariates."""
    b = ah.Battles(c.models, c.b, c.a, c.pref_b, c.question, battle_features(own, other))
    base = c.models.index(baseline) if baseline in c.models else None
    sc = ah.style_controlled(b, base or 0, settings.rounds, settings.seed, frozen, settings.style_freeze,
                             settings.style_center)
    elo, win = sc.elo(settings.level, center=base is None), sc.winrate(settings.level) if base is not None else {}
    per_model = {}
    for m, name in enumerate(c.models):
        per_model[name] = {"style_controlled_rating": elo[m][0], "style_controlled_rating_ci": list(elo[m][1:])}
        if base is not None:
            rate, ci = _triple(win[m], 100)
            per_model[name].update(style_controlled_winrate=rate, style_controlled_winrate_ci=ci)
    return {"per_model": per_model, "fit": sc.fit.to_json(), "frozen": sc.frozen, "battles": len(b)}


def arena_hard_section(store: VerdictStore, with_reference: bool | None, baseline: str, features: np.ndarray,
                       settings: LeaderboardConfig, frozen: ah.StyleFit | None) -> dict[str, Any]:
    """Arena-Hard-Auto's leaderboard of a run judged with its profile: v2.0's score and style-controlled score with
    their bootstrap intervals, v0.1's Elo; battles weighted by verdict strength, unparsed questions left out."""
    g = arena_games(store, with_reference)
    if baseline not in g.models:
        return {"note": "Arena-Hard scores are against a baseline: evaluate with pairing vs-baseline"}
    base = g.models.index(baseline)
    style = battle_features(features[g.record, 1], features[g.record, 0])
    b, dropped = ah.battles_from_games(g.models, g.model, g.opponent, g.question, g.games, g.strong, style)
    b01, dropped01 = ah.battles_from_games(g.models, g.model, g.opponent, g.question, g.games, g.strong, drop="game")
    if not len(b):
        return {"note": f"no question has both games parsed ({dropped} left out): nothing to rate",
                "questions_dropped_unparsed": dropped}
    scores = ah.bootstrap_scores(b, settings.rounds, settings.level, settings.seed)
    sc = ah.style_controlled(b, base, settings.rounds, settings.seed, frozen, settings.style_freeze,
                             settings.style_center)
    sc_win = sc.winrate(settings.level)
    elo = ah.elo_v01(b01, base, settings.rounds, seed=settings.seed)
    tokens = features[:, :, 0]
    rows = []
    for m, name in enumerate(g.models):
        mine = g.model == m
        score, ci = _triple(scores[m], 100) if m in scores else (50.0, [50.0, 50.0])
        sc_score, sc_ci = _triple(sc_win[m], 100)
        slot = 0 if m == base else 1
        recs = g.record[mine | (g.opponent == m)] if m != base else g.record
        rows.append({"model": name, "score": score, "score_ci": ci, "style_controlled_score": sc_score,
                     "style_controlled_score_ci": sc_ci, "elo_v01": elo[m]["elo"],
                     "elo_v01_ci": [elo[m]["elo_lower"], elo[m]["elo_upper"]],
                     "battles": int((b.model == m).sum()), "questions": int(mine.sum()) if m != base else None,
                     "avg_tokens": float(tokens[np.unique(recs), slot].mean()) if len(recs) else None})
    rows.sort(key=lambda r: -r["score"])
    return {"baseline": baseline, "rows": rows, "questions_dropped_unparsed": dropped,
            "games_unparsed": dropped01, "style_coefficients": dict(zip(sc.fit.norm.to_json()["features"],
                                                                        sc.fit.coefficients)),
            "rounds": settings.rounds, "level": settings.level, "seed": settings.seed, "style_frozen": sc.frozen}


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


def add_style(board: dict[str, Any], style: dict[str, Any]) -> None:
    for row in board["rows"]:
        row.update(style["per_model"][row["model"]])
    board["style_control"] = {k: v for k, v in style.items() if k != "per_model"}


def styled_board(c: lb.Comparisons, baseline: str, n_boot: int, seed: int, features: np.ndarray | None,
                 settings: LeaderboardConfig, frozen: ah.StyleFit | None) -> dict[str, Any]:
    """``pairwise_board`` with the style-controlled columns when ``leaderboard.style`` is on; ``features`` are the
    store's answers' style features per (record, turn, slot)."""
    board = pairwise_board(c, baseline, n_boot, seed)
    if settings.style:
        own = features[c.record, c.turn]
        add_style(board, style_columns(c, own[:, 1], own[:, 0], baseline, settings, frozen))
    return board


def turn_entry(board: dict[str, Any]) -> dict[str, Any]:
    """What a per-turn board keeps: its rows, and its style fit when it has one."""
    return {k: board[k] for k in ("rows", "style_control") if k in board}


def rocketeval_board(store: VerdictStore, reference_scores: list[dict[str, Any]], baseline: str,
                     settings: LeaderboardConfig, frozen: ah.StyleFit | None) -> dict[str, Any]:
    """RocketEval's scores of a checklist-graded run (``judgelm.scoring.checklist``): per model the mean predicted
    score over its questions, and the pairwise board of the preferences those scores give."""
    from judgelm.inference.models import load_tokenizer

    tokenizer = load_tokenizer(store.attrs["model"])
    done = store.done()
    rec = store.units("record")[done]
    p = checklist.yes_probability(store.verdicts(TOP_IDS)[done], store.verdicts(TOP_LOGPROBS)[done],
                                  lambda t: tokenizer.decode([t]))
    slots = store.record_models()
    item = item_index(slots[rec, 0])
    names, model = np.unique(slots[rec, 1], return_inverse=True)
    qids, question = np.unique(store.records("question_id")[rec], return_inverse=True)
    names, model, question = [str(n) for n in names], model.ravel(), question.ravel()
    grid = np.full((len(qids), len(names), item.max() + 1), np.nan)
    grid[question, model, item] = p
    answered = np.zeros((len(qids), len(names)), dtype=bool)
    answered[question, model] = True
    target = {(r["question_id"], r["model"]): r["score"] for r in reference_scores}
    scores, weights = np.full(answered.shape, np.nan), []
    for q, qid in enumerate(qids):
        rows = np.flatnonzero(answered[q])
        items = np.arange(item[question == q].max() + 1)
        train = [i for i, m in enumerate(rows) if (str(qid), names[m]) in target]
        y = np.array([target[str(qid), names[rows[i]]] for i in train])
        result = checklist.predict(grid[q][rows][:, items], np.array(train, dtype=int) if train else None, y)
        scores[q, rows] = result.score
        weights += [result.weight] if train else []
    rows_out = []
    for m, name in enumerate(names):
        stats = lb.mean_with_interval(scores[answered[:, m], m][np.isfinite(scores[answered[:, m], m])])
        rows_out.append({"model": name, "mean_score": stats["mean"], "score_ci95": stats["ci95"],
                         "n_questions": int(answered[:, m].sum()), "n_scored": stats["n"],
                         "items_without_yes_no": int(np.isnan(p[model == m]).sum()),
                         "reference_scores": sum(1 for (_, mm) in target if mm == name)})
    rows_out.sort(key=lambda r: -(r["mean_score"] if r["mean_score"] is not None else -1))
    board = {"rows": rows_out, "questions": len(qids), "units_with_probability": int(np.isfinite(p).sum()),
             "units": int(len(p)), "supervised_questions": len(weights),
             "mean_predictor_weight": float(np.mean(weights)) if weights else None,
             "tie_margin": settings.checklist_tie_margin}
    board["pairwise"] = checklist_pairwise(store, scores, answered, names, qids, baseline, settings, frozen)
    return board


def checklist_pairwise(store: VerdictStore, scores: np.ndarray, answered: np.ndarray, names: list[str],
                       qids: np.ndarray, baseline: str, settings: LeaderboardConfig,
                       frozen: ah.StyleFit | None) -> dict[str, Any]:
    """The pairwise board of RocketEval's preferences: per question every model against the baseline (or every
    pair without one), the higher score winning beyond the tie margin."""
    base = names.index(baseline) if baseline in names else None
    pairs = [(q, a, b) for q in range(len(qids)) for a in range(len(names)) for b in range(a + 1, len(names))
             if answered[q, a] and answered[q, b] and (base is None or base in (a, b))]
    if not pairs:
        return {}
    q, a, b = (np.array(x) for x in zip(*pairs))
    if base is not None:  # the baseline in slot 1, as in a vs-baseline evaluation
        a, b = np.where(b == base, b, a), np.where(b == base, a, b)
    pref = checklist.preferences(scores[q, a], scores[q, b], settings.checklist_tie_margin)
    keep = np.isfinite(pref)
    # The answer of each (question, model): every checklist record of it holds it in slot 2.
    rec = store.units("record")
    slots = store.record_models()
    qid_of = {str(x): i for i, x in enumerate(qids)}
    name_of = {n: i for i, n in enumerate(names)}
    text = np.full(answered.shape, "", dtype=object)
    answers, question_ids = store.records("answers"), store.records("question_id")
    for r in np.unique(rec):
        text[qid_of[str(question_ids[r])], name_of[str(slots[r, 1])]] = answers[r, 1]
    q, a, b, pref = q[keep], a[keep], b[keep], pref[keep]
    if not len(q):
        return {}
    chars = np.vectorize(len)(text)
    c = lb.Comparisons(models=names, question=q, a=a, b=b, pref_b=pref, len_a=chars[q, a], len_b=chars[q, b],
                       category=np.full(len(q), ""), consistent=np.full(len(q), np.nan))
    board = pairwise_board(c, baseline if base is not None else "", n_boot=200)
    if settings.style:
        features = answer_features(text.ravel()).reshape(*text.shape, 4)
        add_style(board, style_columns(c, features[q, b], features[q, a], baseline if base is not None else "",
                                       settings, frozen))
    return board


def leaderboard_settings(run_dir: str | Path) -> LeaderboardConfig:
    """A run's ``leaderboard.*`` settings (defaults for runs without a config, like imported ones)."""
    config = RunDir(Path(run_dir)).config
    if not config.exists() or OmegaConf.select(OmegaConf.load(config), "leaderboard") is None:
        return LeaderboardConfig()
    return load_saved(JudgeConfig, config).leaderboard


def build_leaderboard(store: VerdictStore, reference: dict[str, Any] | None = None, n_boot: int = 200,
                      seed: int = 0, settings: LeaderboardConfig | None = None,
                      reference_scores: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The leaderboard of a model-evaluation store, one board per reference mode it judged."""
    settings = settings or LeaderboardConfig()
    ev = store.attrs.get("evaluation", {})
    out: dict[str, Any] = {"run": store.attrs.get("run"), "judge": store.attrs.get("model"),
                           "pairing": ev.get("pairing"), "baseline": ev.get("baseline"), "boards": {}}
    frozen = (ah.StyleFit.from_json(json.loads(Path(settings.style_frozen).read_text()))
              if settings.style_frozen else None)
    baseline = ev.get("baseline") or ""
    if store.attrs.get("judge_profile") == "rocketeval":
        out["boards"]["checklist"] = rocketeval_board(store, reference_scores or [], baseline, settings, frozen)
    elif store.attrs.get("mode") == "single":
        for w in reference_modes(store):
            name = "single" if w is False else f"single_{BOARD_NAMES[w]}"
            out["boards"][name] = single_board(single_scores(store, w))
    else:
        arena = store.attrs.get("judge_profile") in ARENA_HARD_PROFILES
        # Per (record, turn, slot): a turn's comparison is styled by the answers to that turn, the ones it judges.
        features = (answer_features(store.answers_by_turn()[:, :, :2].ravel()).reshape(store.n_records, -1, 2, 4)
                    if settings.style or arena else None)
        for w in reference_modes(store):
            name = BOARD_NAMES[w]
            c = comparisons(store, w, skip_unparsed=arena)
            if not len(c):
                out["boards"][name] = {"rows": [], "note": "no verdict parsed: nothing to rate"}
                continue
            board = styled_board(c, baseline, n_boot, seed, features, settings, frozen)
            if store.n_turns > 1:
                board["turns"] = {}
                for t in range(store.n_turns):
                    turn = comparisons(store, w, t, skip_unparsed=arena)
                    if len(turn):
                        turn_board = styled_board(turn, baseline, n_boot, seed, features, settings, frozen)
                        board["turns"][str(t + 1)] = turn_entry(turn_board)
            if arena:  # its judge has one turn (the profile refuses conversations)
                board["arena_hard"] = arena_hard_section(store, w, baseline, features[:, 0], settings, frozen)
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
    scores_path = run_dir / REFERENCE_SCORES
    reference_scores = ([json.loads(line) for line in scores_path.read_text().splitlines() if line]
                        if scores_path.exists() else None)
    board = finite(build_leaderboard(store, reference, settings=leaderboard_settings(run_dir),
                                     reference_scores=reference_scores))
    fits = [b["style_control"]["fit"] for b in board["boards"].values() if "style_control" in b]
    if fits:  # the first board's, to freeze a later leaderboard with (leaderboard.style_frozen)
        write_text_atomic(run_dir / STYLE_JSON, json.dumps(fits[0], indent=2) + "\n")
    board["figures"] = write_figures(run_dir, board)
    write_text_atomic(run_dir / LEADERBOARD_JSON, json.dumps(board, indent=2) + "\n")
    write_text_atomic(run_dir / LEADERBOARD_MD, format_leaderboard(board))
    return board
