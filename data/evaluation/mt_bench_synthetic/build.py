"""Rebuild this directory: MT-Bench's first question of each category, their GPT-4 references, and three synthetic
"models" answering both turns, in FastChat's llm_judge layout (question.jsonl, reference_answer/, model_answer/).

    python data/evaluation/mt_bench_synthetic/build.py

The answers are written by the rules below, not by any model: they exist to run multi-turn judging end to end on a
machine that cannot download model answers. Each model's second answer is built from its own first answer, as
FastChat's gen_model_answer.py continues the model's own conversation.
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
MT_BENCH = HERE.parent / "mt_bench"
TSTAMP = 1700000000.0  # fixed, so a rebuild is byte-identical


def echo_bot(turns: list[str]) -> list[str]:
    return [f"You said: {t}" for t in turns]


def short_bot(turns: list[str]) -> list[str]:
    first = f"In short: {' '.join(turns[0].split()[:12])}... is a good question, and the answer depends on details."
    return [first, f"Building on my previous answer (\"{first[:40]}...\"): {' '.join(turns[1].split()[:10])}... done."]


def long_bot(turns: list[str]) -> list[str]:
    first = "\n\n".join(f"Point {k}: regarding \"{' '.join(turns[0].split()[:8])}\", consider aspect {k} carefully, "
                        "with an example and a caveat." for k in range(1, 4))
    second = (f"Revising my earlier {len(first.split())}-word answer for the follow-up "
              f"\"{' '.join(turns[1].split()[:8])}\":\n\n" + first.replace("Point", "Revised point"))
    return [first, second]


MODELS = {"echo-bot": echo_bot, "short-bot": short_bot, "long-bot": long_bot}


def main() -> None:
    lines = (MT_BENCH / "question.jsonl").read_text().splitlines()
    picked, seen = [], set()
    for line in lines:  # the first question of each category, lines copied unchanged
        category = json.loads(line)["category"]
        if category not in seen:
            seen.add(category)
            picked.append(line)
    (HERE / "question.jsonl").write_text("".join(line + "\n" for line in picked))
    questions = [json.loads(line) for line in picked]
    ids = {q["question_id"] for q in questions}
    refs = [line for line in (MT_BENCH / "reference_answer" / "gpt-4.jsonl").read_text().splitlines()
            if json.loads(line)["question_id"] in ids]
    (HERE / "reference_answer").mkdir(exist_ok=True)
    (HERE / "reference_answer" / "gpt-4.jsonl").write_text("".join(line + "\n" for line in refs))
    (HERE / "model_answer").mkdir(exist_ok=True)
    for name, answer in MODELS.items():
        rows = [{"question_id": q["question_id"], "answer_id": f"{name}-{q['question_id']}", "model_id": name,
                 "choices": [{"index": 0, "turns": answer(q["turns"])}], "tstamp": TSTAMP} for q in questions]
        (HERE / "model_answer" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
