"""A client for OpenAI-compatible servers: vLLM, SGLang, llama.cpp's server, hosted APIs.

``recgym.llm.load("openai:http://127.0.0.1:8080/v1#smollm2")`` returns a :class:`RemoteLLM`
that sends each prompt as its own request to the server's ``/chat/completions`` endpoint
(``/completions`` for plain text, ``chat=False``), up to ``concurrency`` requests in flight, so
a batched env's N prompts are N concurrent requests: the server batches them (vLLM's
continuous batching, llama.cpp's slots) and can spread them over its GPUs or replicas.

- **Requests** go through the ``openai`` package's client: its timeout and its retries with
  exponential backoff (connection errors, 408, 409, 429 and 5xx answers).
- **Failures never end a long evaluation**: a request that still fails after its retries
  becomes an empty completion (the env's penalised malformed action) and the call warns with
  the URL and the status. A call whose every request fails raises :class:`RemoteLLMError`
  naming the URL and the status: the server is down or misconfigured, and scoring empty
  answers would only hide it.
- **Seeds**: each row's seed is sent as the request's ``seed`` (servers that support it, such
  as vLLM and llama.cpp, sample each request from its own seed, so a row's sample does not
  depend on its batch).
- **API keys** come only from the environment (``OPENAI_API_KEY``, or the variable named by
  ``api_key_env``); they are never part of :attr:`RemoteLLM.name`, a repr, a log line or a
  leaderboard row.
- **A prefilled reply** (a conversation that ends with an assistant turn) has no standard
  chat request: it is rendered with ``chat_template`` (ChatML by default, the format of the
  embedded SmolLM2) and sent to ``/completions``.

The client holds no weights: the roles that need them (the LE, the trained heads of the
verbalizer and the LE's scorer, every trainer) load a local model instead.

Install the ``openai`` extra (``pip install 'recgym[openai]'``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from recgym.error import ModelLoadError
from recgym.llm.base import (
    FinishReason,
    Generation,
    Prompt,
    as_messages,
    check_prompts,
    check_sampling,
    cut_at_stop,
    ends_with_prefill,
    render_chatml,
    row_seeds,
)

__all__ = ["PREFIX", "RemoteLLM", "RemoteLLMError", "parse_spec"]

PREFIX = "openai:"
"""What starts a :func:`recgym.llm.load` name that means an OpenAI-compatible server."""


class RemoteLLMError(RuntimeError):
    """The server could not answer any request of a call (down, wrong URL or model, refused)."""


@dataclass(frozen=True)
class _Answer:
    text: str
    finish_reason: str
    error: str | None = None


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"openai:<base_url>#<model>"`` as ``(base_url, model)`` (``model`` may be left out).

    Raises:
        ValueError: not an ``openai:`` name, or the URL is not http(s) with a host.
    """
    if not spec.startswith(PREFIX):
        raise ValueError(f"expected 'openai:<base_url>#<model>', got {spec!r}")
    url, _, model = spec[len(PREFIX) :].partition("#")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"expected 'openai:<base_url>#<model>' with an http(s) URL such as "
            f"'openai:http://127.0.0.1:8000/v1#my-model', got {spec!r}"
        )
    if parts.username or parts.password:
        raise ValueError(
            "put no credentials in the URL (it is kept in leaderboard rows); set the API key "
            "in the environment (OPENAI_API_KEY, or the variable named by api_key_env)"
        )
    return url.rstrip("/"), model or None


class RemoteLLM:
    """An OpenAI-compatible server behind the :class:`~recgym.llm.LLM` API.

    Args:
        base_url: the server's API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model: the served model's name; default the only model the server lists.
        concurrency: most requests in flight at once.
        timeout: seconds a request may take before it is retried.
        retries: retries of a failed request (exponential backoff), after the first try.
        api_key_env: the environment variable holding the API key (unset: no key, which
            local servers accept).
        chat_template: renders a conversation for ``/completions`` when the reply is
            prefilled (default: ChatML).
        extra_body: fields added to every request, for what a server takes beyond OpenAI's
            API (vLLM's ``top_k``, ``min_p``...); OpenAI's own API refuses unknown fields.

    Attributes:
        name: ``"openai:<base_url>#<model>"`` (no key).
        tokenizer: ``None``; the server tokenizes.
        model: ``None``; there is no local torch module.
        failures: requests that failed after their retries, over this object's life.
    """

    tokenizer: Any = None
    model: Any = None

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        concurrency: int = 16,
        timeout: float = 120.0,
        retries: int = 3,
        api_key_env: str = "OPENAI_API_KEY",
        chat_template: Callable[[Prompt], str] = render_chatml,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        try:
            import openai
        except ImportError as exc:
            raise ModelLoadError(
                "an OpenAI-compatible server needs the openai package; install recgym's extra "
                "with `pip install 'recgym[openai]'`"
            ) from exc
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.concurrency = int(concurrency)
        self.chat_template = chat_template
        self.extra_body = dict(extra_body or {})
        self.failures = 0
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=os.environ.get(api_key_env) or "none",
            timeout=timeout,
            max_retries=retries,
        )
        self.model_id = model or self._only_model()
        self.name = f"{PREFIX}{self.base_url}#{self.model_id}"

    def __repr__(self) -> str:
        return f"RemoteLLM(name={self.name!r}, concurrency={self.concurrency})"

    @property
    def backend(self) -> str:
        """The engine, as leaderboard rows record it."""
        return "openai-server"

    def _only_model(self) -> str:
        try:
            models = [m.id for m in self._client.models.list()]
        except Exception as exc:  # any transport or status error: say where and what
            raise RemoteLLMError(
                f"could not list the models of {self.base_url}/models: {_describe(exc)}; is the "
                "server running, and is the URL its API root (often ending in /v1)?"
            ) from exc
        if len(models) != 1:
            raise ValueError(
                f"{self.base_url} serves {len(models)} models ({', '.join(models[:5])}); name "
                f"one: 'openai:{self.base_url}#<model>'"
            )
        return models[0]

    def chat_prompt(self, messages: Prompt) -> str:
        """The conversation as ``chat_template`` renders it: what ``/completions`` receives for
        a prefilled reply, and what :attr:`Generation.prompt` shows (the server applies its own
        template to chat requests)."""
        return self.chat_template(messages)

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | Sequence[int] | None = None,
        chat: bool = True,
        stop: Sequence[str] | None = None,
        batch_size: int | None = None,
    ) -> list[Generation]:
        """Complete each prompt with one request (see :meth:`recgym.llm.LLM.generate`).

        ``batch_size`` is ignored: up to :attr:`concurrency` requests are in flight at once,
        and the server batches them. ``token_ids`` of the completions are empty (the server's
        tokens are not returned).

        Raises:
            RemoteLLMError: every request of the call failed.
        """
        check_prompts(prompts, chat)
        check_sampling(max_new_tokens, temperature, top_p)
        seeds = row_seeds(seed, len(prompts))
        stops = [s for s in stop or () if s]
        sampling = {
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            **({"stop": stops} if stops else {}),
            **({"extra_body": self.extra_body} if self.extra_body else {}),
        }

        def ask(row: int) -> _Answer:
            return self._ask(prompts[row], chat, {**sampling, "seed": seeds[row] % 2**31})

        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(len(prompts), 1))) as pool:
            answers = list(pool.map(ask, range(len(prompts))))
        errors = [a.error for a in answers if a.error is not None]
        if errors and len(errors) == len(answers):
            raise RemoteLLMError(f"every request to {self.base_url} failed: {errors[0]}")
        if errors:
            self.failures += len(errors)
            warnings.warn(
                f"recgym: {len(errors)} of {len(answers)} requests to {self.base_url} failed "
                f"after retries ({errors[0]}); they count as empty completions",
                RuntimeWarning,
                stacklevel=2,
            )
        out = []
        for prompt, answer in zip(prompts, answers, strict=True):
            text, hit = cut_at_stop(answer.text, stops)
            reason: FinishReason = "stop" if hit or answer.finish_reason != "length" else "length"
            shown = self.chat_prompt(prompt) if chat else str(prompt)
            out.append(Generation(text, [], shown, reason))
        return out

    def _ask(self, prompt: Prompt, chat: bool, sampling: dict[str, Any]) -> _Answer:
        """One request; a failure after the client's retries is an answer with an error."""
        try:
            if chat and not ends_with_prefill(as_messages(prompt)):
                messages: Any = as_messages(prompt)  # the package's TypedDicts, by shape
                reply = self._client.chat.completions.create(
                    model=self.model_id, messages=messages, **sampling
                )
                choice: Any = reply.choices[0]
                return _Answer(choice.message.content or "", choice.finish_reason or "stop")
            text = self.chat_prompt(prompt) if chat else str(prompt)
            done = self._client.completions.create(model=self.model_id, prompt=text, **sampling)
            first: Any = done.choices[0]
            return _Answer(first.text or "", first.finish_reason or "stop")
        except Exception as exc:  # a long evaluation must not die on one bad answer
            return _Answer("", "stop", _describe(exc))


def _describe(exc: Exception) -> str:
    """An error as 'status N from URL' or its type and message, never with the API key."""
    status = getattr(exc, "status_code", None)
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    where = f" from {url}" if url else ""
    if status is not None:
        message = str(getattr(exc, "message", "") or "")[:200]
        return f"HTTP {status}{where}" + (f": {message}" if message else "")
    return f"{type(exc).__name__}{where}: {exc}"
