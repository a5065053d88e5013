"""``make checklists``: RocketEval's grading checklists for a question set, written by a model as a generation run.

    python -m launch.checklists model.path=DIR|HUB_ID [questions.source=alpaca_eval|mt_bench|arena-hard|FILE]
        [engine.backend=openai engine.base_url=URL ...] [shards=4] [cluster=local] [run=NAME] ...

The model answers, per question, RocketEval's checklist-creation prompt with the question's reference answer (the
set's baseline answer where the question has none), sampled as RocketEval samples it (temperature 0.7, top_p 0.95,
1024 new tokens; each can be overridden). It is ``make generate`` otherwise: shards, resume, the answer cache,
``make status``/``make resubmit``, any backend. The run ends with ``runs/<run>/checklists.jsonl``, the file
``evaluate.checklists`` takes, and says how many generated texts had no item RocketEval's parser reads (left out,
never filled in). Every ``key=value`` is a ``make generate`` setting (listed below).
"""

from __future__ import annotations

import time

from launch.cli import run_main
from launch.configs import GenerateLaunchConfig
from launch.generate import generate

# RocketEval's create_checklist: temperature 0.7, top_p 0.95, max_tokens 1024; one temperature for every question.
DEFAULTS = ("generate.checklists=true", "generate.category_temperatures=false", "engine.temperature=0.7",
            "engine.top_p=0.95", "engine.max_new_tokens=1024")


def checklists(argv: list[str]) -> int:
    return generate([*DEFAULTS, f"run={time.strftime('checklists-%Y%m%d-%H%M%S')}", *argv])


def main(argv: list[str] | None = None) -> int:
    return run_main(checklists, __doc__, GenerateLaunchConfig, argv)


if __name__ == "__main__":
    raise SystemExit(main())
