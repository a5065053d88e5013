"""Build the tiny judge's JudgeLM-format training set from LLMBar's labelled pairs.

Two kinds of records, all judgements **synthetic** (seeded scores and a templated explanation naming
"Assistant 1" and "Assistant 2"):

* **LLMBar pairs**: LLMBar's two outputs and its human gold label. The better answer gets a seeded score of
  6-9 and the worse one 2-5 (8-10 and 1-4 when the reference is shown, since the reference is the better
  answer itself). The label is real, but which answer is better is a matter of meaning that a ~2M-parameter
  judge trained for minutes cannot learn: trained on these alone it writes the same verdict for every prompt.
* **Truncated pairs**: for every output of those pairs with at least ``MIN_WORDS`` words, the output next to
  a copy of itself cut after a seeded 0-20 % of its words (at least one word, at a word boundary), the
  complete answer in a seeded slot. The complete answer wins with a clear gap (7-9 against 1-3; 8-10 against
  1-3 with the reference, which is the complete answer). "A cut-off answer is worse" is a true, principled
  and *learnable* signal (it shows in the answers' lengths and in where an answer ends), so the judge's
  verdict comes to depend on its input and both answer slots win. (Cuts of only 10-20 % were not learned by
  the tiny judge within its training budget; the very short cuts are what it picks up first.)

They exist to exercise the training pipeline and the metrics, not to teach judging: a judge trained on them
leans towards the longer, more complete answer at best, which is still far from a real judge.

Only subsets that no benchmark of this project evaluates on are used: LLMBar ``CaseStudy/*`` and the
``Processed/FairEval`` and ``Processed/LLMEval^2`` pairs. LLMBar Natural/Adversarial and
``Processed/MT-Bench`` are benchmarks and are left out, as is PandaLM (the default evaluation set).

    python -m judgelm.train.tiny_data            # regenerate data/tiny_train/judgelm_tiny_train.jsonl
    python -m judgelm.train.tiny_data --check    # fail if the shipped file differs from a regeneration

The output is byte-identical across runs: fixed file order, an RNG seeded per record, fixed JSON layout.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

from judgelm.config import REPO_ROOT

MIN_WORDS = 8  # an output needs this many words to be truncated meaningfully
KEEP_FRACTION = 0.20  # a truncated copy keeps up to this fraction of the output's words (at least one)

LLMBAR_ROOT = REPO_ROOT / "data" / "benchmarks" / "llmbar"  # the raw LLMBar copy, with the subsets used here
SUBSETS = (
    "CaseStudy/Base_9", "CaseStudy/Base_10", "CaseStudy/Constraint", "CaseStudy/Negation", "CaseStudy/Normal",
    "Processed/FairEval", "Processed/LLMEval^2",
)
DEFAULT_OUT = REPO_ROOT / "data" / "tiny_train" / "judgelm_tiny_train.jsonl"
SEED = 20231027  # JudgeLM's first commit date; any fixed value works

_EXPLAIN = (
    "Assistant {w} follows the instruction more closely and its answer is more accurate and relevant. "
    "Assistant {l} misses part of the request, so its answer is less helpful.",
    "Assistant {w} gives a correct and complete response to the question. "
    "Assistant {l}'s response is less precise and leaves out important details.",
    "Both assistants respond to the question, but Assistant {w} is more helpful and accurate. "
    "Assistant {l} does not fully address what the user asked.",
)
_EXPLAIN_REF = (
    "Assistant {w}'s answer agrees with the reference answer and satisfies the instruction. "
    "Assistant {l}'s answer departs from the reference and is less accurate.",
    "Compared with the reference answer, Assistant {w} is accurate and complete, "
    "while Assistant {l} gets important parts wrong.",
)


def judgement(rng: random.Random, better: int, with_reference: bool) -> tuple[str, list[float]]:
    """A synthetic ``"s1 s2\\n<explanation>"`` judgement in which answer ``better`` (1 or 2) wins."""
    hi, lo = (rng.randint(8, 10), rng.randint(1, 4)) if with_reference else (rng.randint(6, 9), rng.randint(2, 5))
    scores = [hi, lo] if better == 1 else [lo, hi]
    template = rng.choice(_EXPLAIN_REF if with_reference else _EXPLAIN)
    text = f"{scores[0]} {scores[1]}\n" + template.format(w=better, l=3 - better)
    return text, [float(s) for s in scores]


_EXPLAIN_TRUNC = (
    "Assistant {w} gives a complete answer that addresses the question. "
    "Assistant {l}'s answer stops after a few words and is incomplete, so it is much less helpful.",
    "Assistant {w} answers the question in full. "
    "Assistant {l}'s response is cut off early and leaves most of the request unanswered.",
    "Assistant {l} only starts to answer and breaks off mid-way, missing most of the needed details. "
    "Assistant {w} provides a full and relevant response.",
)
_EXPLAIN_TRUNC_REF = (
    "Assistant {w}'s answer covers everything in the reference answer. "
    "Assistant {l}'s answer stops after its first few words and misses most of the reference.",
    "Compared with the reference answer, Assistant {w} is complete. "
    "Assistant {l} is cut off early and leaves out most of the content.",
)

_WORD = re.compile(r"\S+")


def truncate(text: str, rng: random.Random) -> str:
    """``text`` cut after its first 0-20 % of words (at least one word), original spacing kept up to the cut."""
    words = list(_WORD.finditer(text))
    keep = max(1, round(len(words) * rng.uniform(0.0, KEEP_FRACTION)))
    return text[: words[keep - 1].end()]


def truncated_judgement(rng: random.Random, complete: int, with_reference: bool) -> tuple[str, list[float]]:
    """A synthetic judgement in which the complete answer (slot ``complete``) beats the truncated one."""
    hi, lo = (rng.randint(8, 10) if with_reference else rng.randint(7, 9)), rng.randint(1, 3)
    scores = [hi, lo] if complete == 1 else [lo, hi]
    template = rng.choice(_EXPLAIN_TRUNC_REF if with_reference else _EXPLAIN_TRUNC)
    text = f"{scores[0]} {scores[1]}\n" + template.format(w=complete, l=3 - complete)
    return text, [float(s) for s in scores]


def truncated_pair(item: dict, subset: str, source: int, qid: int) -> dict | None:
    """Output ``source`` of the pair against a truncated copy of itself; ``None`` if it is too short."""
    full = item[f"output_{source}"]
    if len(full.split()) < MIN_WORDS:
        return None
    rng = random.Random(SEED * 100_019 + qid)
    cut = truncate(full, rng)
    complete = rng.choice((1, 2))  # the slot of the complete answer (training also swaps at random)
    bodies = {complete: full, 3 - complete: cut}
    models = {complete: f"llmbar-output_{source}", 3 - complete: f"llmbar-output_{source}-truncated"}
    text, score = truncated_judgement(rng, complete, with_reference=False)
    text_ref, score_ref = truncated_judgement(rng, complete, with_reference=True)
    return {
        "question_id": qid,
        "question_body": item["input"],
        "answer1_body": bodies[1],
        "answer2_body": bodies[2],
        "answer1_id": f"{qid}-1",
        "answer2_id": f"{qid}-2",
        "answer1_model_id": models[1],
        "answer2_model_id": models[2],
        "answer1_metadata": {"decoding_method": "unknown"},
        "answer2_metadata": {"decoding_method": "unknown"},
        "text": text,
        "score": score,
        "reference": {"decoding_method": "None", "model": f"llmbar-output_{source}", "text": full},
        "text_w_reference": text_ref,
        "score_w_reference": score_ref,
        "subset": f"llmbar/{subset}/truncated",
    }


def convert(root: Path = LLMBAR_ROOT) -> tuple[list[dict], int]:
    """All usable pairs as JudgeLM training records (the LLMBar pairs first, then the truncated pairs), and
    the number of pairs skipped for an empty field."""
    records, skipped, usable = [], 0, []
    for subset in SUBSETS:
        for item in json.loads((root / subset / "dataset.json").read_text(encoding="utf-8")):
            fields = (item.get("input"), item.get("output_1"), item.get("output_2"))
            if not all(isinstance(f, str) and f.strip() for f in fields) or item.get("label") not in (1, 2):
                skipped += 1
                continue
            usable.append((subset, item))
            qid = len(records)
            better = item["label"]
            rng = random.Random(SEED * 100_003 + qid)
            text, score = judgement(rng, better, with_reference=False)
            text_ref, score_ref = judgement(rng, better, with_reference=True)
            records.append({
                "question_id": qid,
                "question_body": item["input"],
                "answer1_body": item["output_1"],
                "answer2_body": item["output_2"],
                "answer1_id": f"{qid}-1",
                "answer2_id": f"{qid}-2",
                "answer1_model_id": "llmbar-output_1",
                "answer2_model_id": "llmbar-output_2",
                "answer1_metadata": {"decoding_method": "unknown"},
                "answer2_metadata": {"decoding_method": "unknown"},
                "text": text,
                "score": score,
                "reference": {"decoding_method": "None", "model": f"llmbar-output_{better}",
                              "text": item[f"output_{better}"]},
                "text_w_reference": text_ref,
                "score_w_reference": score_ref,
                "subset": f"llmbar/{subset}",
            })
    for subset, item in usable:
        for source in (1, 2):
            pair = truncated_pair(item, subset, source, len(records))
            if pair is not None:
                records.append(pair)
    return records, skipped


def render(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llmbar", type=Path, default=LLMBAR_ROOT, help="a raw copy of LLMBar's Dataset/ folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = ap.parse_args(argv)
    records, skipped = convert(args.llmbar)
    data = render(records)
    if args.check:
        same = args.out.is_file() and args.out.read_bytes() == data
        print(f"{args.out}: {'identical' if same else 'DIFFERS from a regeneration'} ({len(records)} records)")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {len(records)} records to {args.out} ({skipped} pairs skipped for an empty field)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
