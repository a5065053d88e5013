"""From rendered prompts to token ids: plain prompts get BOS as JudgeLM does, chat prompts go through the
tokenizer's chat template (which places its own BOS, so none is added)."""

from __future__ import annotations

import logging
from functools import cache

from judgelm.inference.models import encode_with_bos
from judgelm.profiles.base import Prompt

log = logging.getLogger("judgelm.profiles")


@cache
def warn_once(message: str) -> None:
    log.warning(message)


def chat_text(tokenizer, prompt: Prompt) -> str:
    """The prompt through the judge's chat template, ready for generation.

    A template that refuses a system message (Mistral's, under Prometheus 2) gets it at the top of the user turn,
    as FastChat's Mistral conversation does. A tokenizer without a template (the tiny judge) gets system and user
    joined by a blank line: the run still works, the judge just never saw that format.
    """
    if getattr(tokenizer, "chat_template", None) is None:
        warn_once("the judge's tokenizer has no chat template: system and user text are joined plainly")
        return "\n\n".join(m["content"] for m in prompt.messages())
    try:
        return tokenizer.apply_chat_template(prompt.messages(), tokenize=False, add_generation_prompt=True)
    except Exception as e:  # jinja2's TemplateError, raised by templates that reject the system role
        if prompt.system is None:
            raise
        warn_once(f"the chat template refused the system message ({e}): it goes at the top of the user turn")
        folded = Prompt(prompt.system + "\n\n" + prompt.user, None, chat=True)
        return tokenizer.apply_chat_template(folded.messages(), tokenize=False, add_generation_prompt=True)


def encode_prompts(tokenizer, prompts: list[Prompt]) -> list[list[int]]:
    """Token ids per prompt, in order."""
    out: list[list[int]] = [[] for _ in prompts]
    plain = [i for i, p in enumerate(prompts) if not p.chat]
    for i, ids in zip(plain, encode_with_bos(tokenizer, [prompts[i].user for i in plain]) if plain else []):
        out[i] = ids
    chat = [i for i, p in enumerate(prompts) if p.chat]
    if chat:
        texts = [chat_text(tokenizer, prompts[i]) for i in chat]
        for i, ids in zip(chat, tokenizer(texts, add_special_tokens=False)["input_ids"]):
            out[i] = ids
    return out
