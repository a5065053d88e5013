"""``make prompts``: the exact prompt of every unit a judging run with these settings would judge, as JSON lines.

    python -m launch.prompts [data.source=pandalm|FILE|generic:MAPPING.yaml] [judge.profile=judgelm|pandalm|...]
        [prompt.mode=pair|single|multi] [prompt.reference=both|without|with] [prompt.orders=both|original]
        [data.limit=N] [model.path=DIR] [out=FILE]

Every setting means what it means for ``make judge`` (the same ``configs/judge.yaml``), so a prompt seen here is
the prompt judged there. One line per unit, record by record: ``question_id``, ``turn`` (of a conversation; 1
for a single-turn record), ``order`` (1: answers swapped), ``reference`` (the reference answer shown), ``system``
and ``user`` (the profile's parts), ``chat`` (whether the judge's chat template wraps them) and ``prompt``: the
text the judge's tokenizer is given (for a chat profile, the parts through ``model.path``'s chat template).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from dataclasses import dataclass

from judgelm.config import CONFIG_DIR, load_config
from judgelm.judging.config import JudgeConfig
from judgelm.judging.prompt_export import unit_prompts
from launch.cli import run_main


@dataclass
class PromptsConfig(JudgeConfig):
    """A judging run's settings, and where its prompts go."""

    out: str = ""
    """File to write the JSON lines to (empty: standard output)."""


def prompts(argv: list[str]) -> int:
    # The JSON lines may go to stdout: the log (a chat template's warning) goes to stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, force=True)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `make prompts | head` just stops
    cfg = load_config(PromptsConfig, CONFIG_DIR / "judge.yaml", argv)
    cfg.shards = 1  # one listing, not a sharded run: no warning about shards left empty
    rows = (json.dumps(row, ensure_ascii=False) + "\n" for row in unit_prompts(cfg))
    if not cfg.out:
        sys.stdout.writelines(rows)
        return 0
    with open(cfg.out, "w", encoding="utf-8") as f:
        f.writelines(rows)
    print(f"prompts: {cfg.out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(prompts, __doc__, PromptsConfig, argv)


if __name__ == "__main__":
    raise SystemExit(main())
