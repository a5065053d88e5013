"""Runs Arena-Hard-Auto's own show_result.py on judgments.jsonl and writes official.json (its numbers, unrounded).

Not run by the tests: it needs a checkout of lmarena/arena-hard-auto at 196f6b826783b3da7310e361a805fa36f0be83f3
(whose code is not part of this repository) and its dependencies (pandas, torch, tqdm, tiktoken with the o200k_base
encoding). The exact command that wrote official.json:

    cd <checkout> && TIKTOKEN_CACHE_DIR=<dir with o200k_base> python utils/add_markdown_info.py \
        --dir <shipped v0.1 model_answer dir> --output-dir <work>/data/arena-hard-v0.1/model_answer
    cp judgments.jsonl <work>/data/arena-hard-v0.1/model_judgment/synthetic/all.jsonl
    cd <work> && PYTHONPATH=<checkout> python <this file> --seed 7

It imports show_result as a module and calls what its __main__ calls for ``-b arena-hard-v0.1 -j synthetic -c
arena-hard-v0.1`` (then again with ``-f length markdown``), with numpy's global seed set before each bootstrap
(their code draws from it unseeded), and records the values handed to show_result.format_confidence_interval, which
its printed table rounds to one decimal, and the median style coefficients it prints ("Feature Coefs").
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import show_result

captured = []
original = show_result.format_confidence_interval
original_bootstrap = show_result.bootstrap_pairwise_model
coefficients = []


def recording_bootstrap(*args, **kwargs):
    coefs, etas = original_bootstrap(*args, **kwargs)
    coefficients.append([float(c) for c in show_result.torch.quantile(coefs[:, -4:], 0.5, axis=0)])
    return coefs, etas


def recording(mean_scores, lower_scores, upper_scores, baseline=None):
    merged = mean_scores.merge(lower_scores, on="model").merge(upper_scores, on="model")
    captured.append({r.model: [float(r.scores), float(r.lower), float(r.upper)] for r in merged.itertuples()})
    return original(mean_scores, lower_scores, upper_scores, baseline)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    show_result.format_confidence_interval = recording
    show_result.bootstrap_pairwise_model = recording_bootstrap
    bench, category = "arena-hard-v0.1", "arena-hard-v0.1"
    battles = show_result.load_judgments(["synthetic"], bench)
    battles = battles[battles.category == category].reset_index(drop=True)
    np.random.seed(args.seed)
    show_result.print_leaderboard(battles.copy(), category)
    np.random.seed(args.seed)
    show_result.print_leaderboard_with_style_features(battles.copy(), bench, category, ["length", "markdown"])
    metadata = show_result.get_model_style_metadata(bench)
    features = {m: {uid: [v if isinstance(v, int) else sum(v.values()) for v in meta.values()]
                    for uid, meta in per.items()} for m, per in metadata.items()}
    out = {"arena_hard_auto_commit": "196f6b826783b3da7310e361a805fa36f0be83f3", "seed": args.seed,
           "command": " ".join(sys.argv), "versions": {"pandas": pd.__version__, "numpy": np.__version__,
                                                      "torch": show_result.torch.__version__},
           "battle_rows": len(battles), "uncontrolled": captured[0], "style_controlled": captured[1],
           "style_coefficients": coefficients[0],
           "answer_features": features}
    Path(__file__).with_name("official.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
