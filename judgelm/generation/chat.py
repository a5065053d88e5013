"""A conversation as the model reads it: its chat template, the system prompt, and thinking kept apart.

The model's own chat template renders every turn (the whole conversation so far, as FastChat's gen_model_answer.py
does for MT-Bench's second turn). A tokenizer without a template is refused unless the user names one
(``generate.chat_template``): answers generated without the format a model was tuned on say nothing about it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from judgelm.config import CONFIG_DIR, ConfigError

TEMPLATES_DIR = CONFIG_DIR / "chat_templates"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def template_text(setting: str) -> str | None:
    """The Jinja source ``generate.chat_template`` names (a file, or a name in ``configs/chat_templates/``), or
    ``None`` for the model's own."""
    if not setting:
        return None
    path = Path(setting)
    if not path.is_file():
        path = TEMPLATES_DIR / f"{setting}.jinja"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in TEMPLATES_DIR.glob("*.jinja")))
        raise ConfigError(f"generate.chat_template={setting}: no such file, nor a template of {TEMPLATES_DIR} "
                          f"({names})")
    return path.read_text()


def template_digest(template: str | None) -> str:
    return hashlib.sha256((template or "").encode()).hexdigest()[:16]


def has_chat_template(model_path: str) -> bool:
    """Whether the tokenizer in ``model_path`` has a chat template. A template file, or a template in
    ``tokenizer_config.json``, is what transformers loads, so those files answer without it; only where they say
    nothing does the tokenizer decide (loading it imports torch and transformers: seconds of a run's creation)."""
    root = Path(model_path)
    if (root / "chat_template.jinja").is_file() or any((root / "additional_chat_templates").glob("*.jinja")):
        return True
    try:
        if json.loads((root / "tokenizer_config.json").read_text()).get("chat_template"):
            return True
    except (OSError, ValueError, AttributeError):
        pass  # no readable config: the tokenizer's own loading says what is wrong
    from judgelm.inference.models import load_tokenizer

    return bool(getattr(load_tokenizer(model_path), "chat_template", None))


def check_template(template: str | None, model_path: str) -> None:
    """Refuse a model whose tokenizer has no chat template when none is named."""
    if template is None and not has_chat_template(model_path):
        raise ConfigError(f"model.path={model_path}: its tokenizer has no chat template, so the conversation's "
                          f"format would be a guess; name one with generate.chat_template=chatml|plain|FILE.jinja")


@dataclass(frozen=True)
class Conversation:
    """A conversation rendered for the model. ``text`` (through the chat template) is what in-process engines
    tokenize and a completions server is sent; ``messages()`` is what a chat server is sent. For the engines it is
    a plain prompt (``chat`` False): ``text`` is already the whole of it."""

    text: str
    turns: tuple[tuple[str, str], ...]  # (role, content)
    chat = False

    @property
    def user(self) -> str:
        return self.text

    def messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.turns]


def render(tokenizer, turns: list[tuple[str, str]], template: str | None) -> Conversation:
    """``turns`` (the system message if any, then user and assistant turns, ending with a user turn) ready for the
    assistant's next turn. A template that refuses the system role gets it at the top of the first user turn, as
    FastChat does for such models."""
    messages = [{"role": r, "content": c} for r, c in turns]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             chat_template=template)
    except Exception:  # jinja2's TemplateError, raised by templates that reject the system role
        if not turns or turns[0][0] != "system":
            raise
        (_, system), (role, first), *rest = turns
        return render(tokenizer, [(role, f"{system}\n\n{first}"), *rest], template)
    return Conversation(text, tuple(turns))


def encode(tokenizer, conversations: list[Conversation]) -> list[list[int]]:
    """Token ids of rendered conversations: the template places its own BOS, so none is added."""
    if not conversations:
        return []
    return tokenizer([c.text for c in conversations], add_special_tokens=False)["input_ids"]


_THINK = re.compile(rf"^\s*(?:{re.escape(THINK_OPEN)})?(.*?){re.escape(THINK_CLOSE)}(.*)$", re.DOTALL)


def split_thinking(text: str) -> tuple[str, str]:
    """``(thinking, answer)`` of a generated text. A reasoning model writes ``<think>…</think>`` before its answer
    (or only the closing tag, when its template opens the block in the prompt); thinking that never closed (the
    token limit came first) leaves no answer. Text without the tags is all answer."""
    m = _THINK.match(text)
    if m:
        return m.group(1).strip(), m.group(2).strip()
    if text.lstrip().startswith(THINK_OPEN):
        return text.lstrip()[len(THINK_OPEN):].strip(), ""
    return "", text


def with_reasoning(text: str, reasoning: str | None) -> str:
    """A server's separate reasoning field put back in front of its answer, as a model that thinks in its text
    writes it: one raw form for the answer cache and ``split_thinking``."""
    return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{text}" if reasoning else text
