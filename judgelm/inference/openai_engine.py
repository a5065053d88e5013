"""Judging through an OpenAI-compatible server (vLLM, SGLang, ``transformers serve``, hosted APIs).

The shard renders, counts and fits prompts with the model's tokenizer exactly as for the local engines; this
engine sends the rendered text. With ``api=completions`` that is the very text the in-process engine tokenizes
(the server adds BOS itself, so a chat-templated prompt is sent without its own); with ``api=chat`` it is the
profile's messages. Requests run ``concurrency`` at a time; a 429, a 5xx, a timeout or a refused connection is
retried with exponential backoff, and when retries run out the chunk fails whole (nothing of it is committed),
so a resubmitted shard resumes there. The API key comes from the environment variable named in the config, or,
for the run's own judge server (``base_url=file:PATH``), from the file that server's job wrote for the run's
owner; it is handed to the client only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from judgelm.inference.config import EngineConfig, ModelConfig, context_length
from judgelm.inference.encode import chat_text
from judgelm.inference.hf import Generation
from judgelm.inference.models import load_tokenizer
from judgelm.inference.usage import Usage
from judgelm.profiles import Prompt

log = logging.getLogger("judgelm.openai")
MAX_BACKOFF_S = 120.0
FILE_PREFIX = "file:"  # base_url=file:PATH: the address is in PATH, written by a judge-server job
_TOKEN_ID = re.compile(r"token_id:(\d+)")  # vLLM's form of a token with return_tokens_as_token_ids


class ServerUnavailable(RuntimeError):
    """Retries ran out: the shard stops, and a resubmission resumes from the last committed chunk."""


def resolve_server(base_url: str, wait_s: float) -> tuple[str, str | None]:
    """``(base_url, None)``, or, for ``file:PATH``, the address and key a judge-server job wrote to PATH once its
    server answered (``{"base_url": ..., "api_key": ...}``; a file holding only a URL is read as one, no key)."""
    if not base_url.startswith(FILE_PREFIX):
        return base_url, None
    path, deadline = Path(base_url[len(FILE_PREFIX):]), time.monotonic() + wait_s
    while not path.is_file():
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"no judge server address in {path} after {wait_s:.0f} s (is the server job up?)")
        time.sleep(5)
    text = path.read_text().strip()
    if not text.startswith("{"):
        return text, None
    server = json.loads(text)
    return server["base_url"], server.get("api_key")


def resolve_base_url(base_url: str, wait_s: float) -> str:
    """The server's address (``resolve_server`` without the key)."""
    return resolve_server(base_url, wait_s)[0]


class OpenAIEngine:
    def __init__(self, model_cfg: ModelConfig, cfg: EngineConfig):
        try:
            import openai
        except ImportError as e:
            raise RuntimeError("engine.backend=openai needs the openai package: pip install -e .[openai]") from e
        self.cfg, self.max_new = cfg, cfg.new_tokens()
        self.tokenizer = load_tokenizer(model_cfg.path)
        self.context_length = context_length(model_cfg, cfg)
        self.model = cfg.served_model or model_cfg.path
        key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else "unused"
        if not key:
            raise ValueError(f"engine.api_key_env={cfg.api_key_env}: that environment variable is empty or unset")
        url, run_key = resolve_server(cfg.base_url, cfg.server_wait_s)
        self.client = openai.OpenAI(base_url=url, api_key=run_key or key, timeout=cfg.request_timeout_s,
                                    max_retries=0)
        self.retryable = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                          openai.APIConnectionError)
        if cfg.base_url.startswith(FILE_PREFIX):  # the run's own server, requeued, starts with a new key
            self.retryable += (openai.AuthenticationError,)
        self.usage = Usage()

    def generate(self, units: list[int], ids: list[list[int]], prompts: list[Prompt]) -> list[Generation]:
        with ThreadPoolExecutor(self.cfg.concurrency) as pool:
            gens = list(pool.map(self._one, units, prompts))
        for g in gens:
            self.usage.add(g.extra["usage"])
        return gens

    def _request(self, unit: int, prompt: Prompt) -> dict:
        c = self.cfg
        sampling = c.temperature > 0
        args = {"model": self.model, "max_tokens": self.max_new, "temperature": c.temperature,
                "top_p": c.top_p if sampling else 1.0,
                # One seed per unit, as the local engines: a verdict does not depend on its batch or shard.
                "seed": c.seed * 1_000_003 + unit if sampling else None,
                "stop": ["\n"] if c.mode == "fast" else None}
        if c.logprobs_topk:
            args["extra_body"] = {"return_tokens_as_token_ids": True}
        if c.api == "chat":
            args["messages"] = prompt.messages()
            if c.logprobs_topk:
                args.update(logprobs=True, top_logprobs=c.logprobs_topk)
            return args
        text = chat_text(self.tokenizer, prompt) if prompt.chat else prompt.user
        bos = self.tokenizer.bos_token
        args["prompt"] = text[len(bos):] if bos and text.startswith(bos) else text  # the server adds BOS itself
        if c.logprobs_topk:
            args["logprobs"] = c.logprobs_topk
        return args

    def _call(self, args: dict):
        """The server's response and how many retries it took."""
        create = self.client.chat.completions.create if "messages" in args else self.client.completions.create
        args = {k: v for k, v in args.items() if v is not None}
        attempt = 0
        while True:
            try:
                return create(**args), attempt
            except self.retryable as e:
                if attempt == self.cfg.max_retries:
                    raise ServerUnavailable(f"{type(e).__name__} from {self.client.base_url} after "
                                            f"{attempt + 1} tries: {e}") from None
                delay = min(MAX_BACKOFF_S, self.cfg.backoff_s * 2 ** attempt)
                attempt += 1
                if self.cfg.base_url.startswith(FILE_PREFIX):  # a requeued judge server may come back on another node
                    url, run_key = resolve_server(self.cfg.base_url, self.cfg.server_wait_s)
                    self.client.base_url, self.client.api_key = url, run_key or self.client.api_key
                log.warning("%s from the server, retry %d/%d in %.1f s", type(e).__name__, attempt,
                            self.cfg.max_retries, delay)
                time.sleep(delay)

    def _one(self, unit: int, prompt: Prompt) -> Generation:
        response, retries = self._call(self._request(unit, prompt))
        choice = response.choices[0]
        text = (choice.message.content or "") if self.cfg.api == "chat" else choice.text
        # A reasoning model's thinking, where the server parses it out of the content (vLLM's reasoning parsers:
        # ``reasoning_content``, newer servers ``reasoning``); answer generation keeps it apart from the answer.
        message = choice.message if self.cfg.api == "chat" else None
        reasoning = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None)
        if self.cfg.mode == "fast":  # servers that ignore ``stop``: keep the score line, as the local engines do
            text = text[: text.index("\n") + 1] if "\n" in text else text
        u = response.usage
        prompt_tokens, new_tokens = getattr(u, "prompt_tokens", 0) or 0, getattr(u, "completion_tokens", 0) or 0
        cost = (prompt_tokens * self.cfg.cost_per_1k_prompt + new_tokens * self.cfg.cost_per_1k_completion) / 1000
        usage = Usage(requests=1, retries=retries, prompt_tokens=prompt_tokens, completion_tokens=new_tokens,
                      cost_usd=cost)
        top_ids, top_lp = self._top_logprobs(choice)
        # The text re-encoded stands in for the ids the server does not return; its own count is the true length
        # (re-encoding can merge tokens).
        return Generation(unit=unit, token_ids=self.tokenizer(text, add_special_tokens=False)["input_ids"], text=text,
                          stopped=choice.finish_reason == "stop", top_ids=top_ids, top_logprobs=top_lp,
                          extra={"usage": usage, "reasoning": reasoning}, new_tokens=new_tokens or None)

    def _top_logprobs(self, choice) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The server's top-k alternatives per generated position, where it names them by token id (vLLM with
        ``return_tokens_as_token_ids``); other servers' token strings cannot be mapped back reliably."""
        k = self.cfg.logprobs_topk
        lp = getattr(choice, "logprobs", None)
        if not k or lp is None:
            return None, None
        if self.cfg.api == "chat":
            steps = [{t.token: t.logprob for t in pos.top_logprobs} for pos in (lp.content or [])]
        else:
            steps = lp.top_logprobs or []
        top_ids = np.zeros((self.max_new, k), dtype=np.int32)
        top_lp = np.full((self.max_new, k), np.nan, dtype=np.float32)
        for step, cand in enumerate(steps[: self.max_new]):
            best = sorted(cand.items(), key=lambda kv: -kv[1])[:k]
            matches = [_TOKEN_ID.fullmatch(t) for t, _ in best]
            if not all(matches):
                return None, None
            top_ids[step, : len(best)] = [int(m.group(1)) for m in matches]
            top_lp[step, : len(best)] = [v for _, v in best]
        return top_ids, top_lp
