"""What every judge profile is: a prompt renderer and a parser over the store's score slots.

The store keeps scores per slot and the merge decides win/tie/lose by comparing them, so a profile whose judge
names a winner maps its verdict to scores: the winner's slot gets 1 and the other 0, a tie 0 and 0. A profile
whose judge writes a number stores the number. Nothing downstream of the parse knows which profile judged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from judgelm.data.records import Turn
from judgelm.profiles.prompts import Mode

Scores = tuple[float, ...]

# A named winner as store scores: compared by the merge exactly like JudgeLM's two numbers.
FIRST, SECOND, TIE = (1.0, 0.0), (0.0, 1.0), (0.0, 0.0)


@dataclass(frozen=True)
class Prompt:
    """One rendered judge prompt."""

    user: str
    system: str | None = None
    chat: bool = False  # the judge's chat template wraps system + user (else ``user`` is the whole prompt)

    def messages(self) -> list[dict[str, str]]:
        """The prompt as chat messages, for a tokenizer's chat template or a chat-completions server."""
        head = [{"role": "system", "content": self.system}] if self.system is not None else []
        return head + [{"role": "user", "content": self.user}]


class UnsupportedMode(ValueError):
    """A profile asked for a prompt mode its authors did not publish."""


class Profile:
    """A published judge's prompt and parser. Subclasses set the class attributes and the two methods."""

    name: str = ""
    modes: tuple[Mode, ...] = (Mode.PAIR, Mode.SINGLE)
    verdict_first: bool = False
    """The verdict is the first line of the output (JudgeLM, PandaLM), so fast mode may stop at the newline;
    every other profile explains first and needs ``engine.mode=full``."""
    single_scale: tuple[float, float] = (1.0, 10.0)
    """Range of the single-answer score this profile stores."""
    engine_defaults: dict[str, int] = {}
    """Engine settings this judge needs, applied where the user left them at 0 (RocketEval reads the first token's
    log-probabilities)."""
    max_turns: int = 1
    """The longest conversation the profile can judge turn by turn (``render_turn``); 1: it has no multi-turn form."""

    def check_mode(self, mode: Mode) -> None:
        if Mode(mode) not in self.modes:
            supported = ", ".join(m.value for m in self.modes)
            raise UnsupportedMode(f"judge.profile={self.name} has no {Mode(mode).value} mode (it has: {supported}); "
                                  f"choose another prompt.mode or profile")

    def check_turns(self, n_turns: int) -> None:
        """Refuse conversations longer than the profile can judge, naming what to use instead."""
        if n_turns <= self.max_turns:
            return
        if self.max_turns == 1:
            raise UnsupportedMode(f"judge.profile={self.name} has no multi-turn form, and the data has {n_turns}-turn "
                                  "conversations; judge every turn with judge.profile=judgelm or mtbench-gpt4, or "
                                  "only the first turn with prompt.turns=1")
        raise UnsupportedMode(f"judge.profile={self.name} judges conversations of at most {self.max_turns} turns, and "
                              f"the data has {n_turns}-turn conversations; judge their first {self.max_turns} with "
                              f"prompt.turns={self.max_turns}, or every turn with judge.profile=judgelm")

    def render(self, question: str, answers: Sequence[str], reference: str | None, mode: Mode) -> Prompt:
        """The prompt for one unit. ``answers`` are in slot order; in single mode they are ``(gold, tested)``."""
        raise NotImplementedError

    def render_turn(self, question: str, answers: Sequence[str], reference: str | None, mode: Mode,
                    history: Sequence[Turn]) -> Prompt:
        """The prompt for a later turn of a conversation: ``question``, ``answers`` and ``reference`` are the turn's,
        ``history`` the turns before it (their answers in the same slot order, their references where shown)."""
        raise NotImplementedError

    def render_unit(self, question: str, answers: Sequence[str], reference: str | None, mode: Mode,
                    history: Sequence[Turn] = ()) -> Prompt:
        """``render`` for a first turn, ``render_turn`` for a later one."""
        if not history:
            return self.render(question, answers, reference, mode)
        self.check_turns(len(history) + 1)
        return self.render_turn(question, answers, reference, mode, history)

    def parse(self, text: str, mode: Mode, n_scores: int) -> Scores | None:
        """Store scores from the judge's generated text, or ``None`` when the authors' parser finds no verdict."""
        raise NotImplementedError
