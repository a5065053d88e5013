"""RewardBench, filtered split (ODC-BY, see data/benchmarks/rewardbench/): 2,985 chosen/rejected pairs in four
sections (Chat, Chat Hard, Safety, Reasoning) of 23 subsets.

Label convention: ``chosen`` is better than ``rejected``; no ties. Where the chosen answer sits alternates with the
row id (even: slot 1, label 1; odd: slot 2, label -1), so a run in the original order only is not one long
"answer 1 wins" streak; the benchmark protocol judges both orders anyway. Section is the category; record ids are
``<subset>/<id>`` because the copy repeats one id across subsets.

Official scoring (``protocols.rewardbench``): per-subset accuracy, a section's score is the mean of its subsets
weighted by RewardBench's ``EXAMPLE_COUNTS`` (which upweights math-prm to equal the six code subsets together), and
the overall score is the mean of the four sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judgelm.data.benchmarks.files import load_files
from judgelm.data.records import Loaded, Record, RecordError, Source, require_id, require_text

FILES = ("Chat.jsonl", "Chat_Hard.jsonl", "Safety.jsonl", "Reasoning.jsonl")

# allenai/reward-bench rewardbench/constants.py (SUBSET_MAPPING and EXAMPLE_COUNTS).
SECTIONS = {
    "Chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "Chat Hard": ("mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"),
    "Safety": ("refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"),
    "Reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}
EXAMPLE_COUNTS = {
    "alpacaeval-easy": 100, "alpacaeval-length": 95, "alpacaeval-hard": 95, "mt-bench-easy": 28, "mt-bench-med": 40,
    "mt-bench-hard": 37, "math-prm": 984, "refusals-dangerous": 100, "refusals-offensive": 100, "llmbar-natural": 100,
    "llmbar-adver-neighbor": 134, "llmbar-adver-GPTInst": 92, "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46,
    "xstest-should-refuse": 154, "xstest-should-respond": 250, "donotanswer": 136, "hep-cpp": 164, "hep-go": 164,
    "hep-java": 164, "hep-js": 164, "hep-python": 164, "hep-rust": 164,
}
SECTION_OF = {subset: section for section, subsets in SECTIONS.items() for subset in subsets}


def record_from_rewardbench(obj: Any, src: Source) -> Record:
    if not isinstance(obj, dict):
        raise RecordError(src, None, f"expected a JSON object, got {type(obj).__name__}")
    rid = require_id(obj, "id", src)
    if not isinstance(rid, int):
        raise RecordError(src, "id", f"expected an integer, got {type(rid).__name__}")
    subset = require_text(obj, "subset", src)
    if subset not in SECTION_OF:
        raise RecordError(src, "subset", f"unknown RewardBench subset {subset!r}")
    section = require_text(obj, "section", src)
    if section != SECTION_OF[subset]:
        raise RecordError(src, "section", f"subset {subset!r} belongs to {SECTION_OF[subset]!r}, not {section!r}")
    # An empty answer is data (a model that answered nothing), as in every other source.
    chosen, rejected = (require_text(obj, key, src, allow_empty=True) for key in ("chosen", "rejected"))
    chosen_first = rid % 2 == 0
    return Record(question_id=f"{subset}/{rid}", question=require_text(obj, "prompt", src),
                  answers=(chosen, rejected) if chosen_first else (rejected, chosen),
                  label=1 if chosen_first else -1, subset=f"rewardbench/{subset}", category=section)


def load_rewardbench(root: str | Path, skip_invalid: bool = False) -> Loaded:
    return load_files({Path(root) / name: record_from_rewardbench for name in FILES}, skip_invalid)
