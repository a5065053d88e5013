"""Judge profiles: which published judge's prompt and parser a run uses (``judge.profile=NAME``).

Every profile maps its verdicts onto the store's score slots (``judgelm.profiles.base``), so every benchmark,
import, merge and report works the same whichever judge ran. The table below is the only list of profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

from judgelm.profiles.arena_hard import ArenaHard, ArenaHardCreative
from judgelm.profiles.autoj import AutoJ
from judgelm.profiles.base import Profile, Prompt, UnsupportedMode
from judgelm.profiles.chat import Chat
from judgelm.profiles.judgelm_profile import JudgeLM
from judgelm.profiles.mtbench import MTBenchGPT4
from judgelm.profiles.pandalm import PandaLM
from judgelm.profiles.prometheus2 import Prometheus2
from judgelm.profiles.rocketeval import RocketEval


@dataclass
class JudgeProfileConfig:
    """Which judge's prompt and parser to use (``judge.*``)."""

    profile: str = "judgelm"
    """``judgelm`` (default), ``pandalm``, ``prometheus2``, ``autoj``, ``mtbench-gpt4``, ``chat``, ``arena-hard``
    (Arena-Hard-Auto's judge; ``arena-hard-creative`` for v2.0's creative writing) or ``rocketeval`` (RocketEval's
    checklist grading, with ``evaluate.pairing=checklist``)."""
    rubric: str = "helpfulness"
    """``prometheus2`` only: a prometheus-eval rubric name (helpfulness, harmlessness, honesty, factual_validity,
    reasoning) or a whole rubric text (``[criterion]`` line, then ``Score 1: ...`` to ``Score 5: ...``)."""
    instruction: str = ""
    """``chat`` only: the instruction placed before the question and answers; empty takes the profile's default,
    which asks for a final ``Verdict: A|B|tie`` (pairs) or ``Score: N`` (single) line."""


PROFILES: dict[str, type[Profile]] = {p.name: p for p in (JudgeLM, PandaLM, Prometheus2, AutoJ, MTBenchGPT4, Chat,
                                                          ArenaHard, ArenaHardCreative, RocketEval)}


def profile_class(name: str) -> type[Profile]:
    if name not in PROFILES:
        raise ValueError(f"judge.profile={name!r} is not one of: {', '.join(PROFILES)}")
    return PROFILES[name]


def make_profile(cfg: JudgeProfileConfig) -> Profile:
    """The configured profile, its options (rubric, instruction) checked."""
    cls = profile_class(cfg.profile)
    if cls is Prometheus2:
        return Prometheus2(cfg.rubric)
    if cls is Chat:
        return Chat(cfg.instruction)
    return cls()


def store_attrs(cfg: JudgeProfileConfig) -> dict[str, str]:
    """What a run records about its judge profile in the store attributes."""
    attrs = {"judge_profile": cfg.profile}
    if cfg.profile == "prometheus2":
        attrs["judge_rubric"] = cfg.rubric
    if cfg.profile == "chat" and cfg.instruction:
        attrs["judge_instruction"] = cfg.instruction
    return attrs


__all__ = [
    "PROFILES",
    "JudgeProfileConfig",
    "Profile",
    "Prompt",
    "UnsupportedMode",
    "make_profile",
    "profile_class",
    "store_attrs",
]
