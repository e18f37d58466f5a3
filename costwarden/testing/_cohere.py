"""Cohere's v2 HTTP API for the fake provider (``cohere.ClientV2(base_url=fake.url)``).

Routes: ``POST /v2/chat`` (JSON, or server-sent events ``message-start``, ``content-start``,
``content-delta`` …, ``message-end`` when ``stream`` is true) and ``POST /v2/embed``.

Usage is deterministic, with ``count_tokens`` from ``_tokens``:

- Chat: billed input tokens = ``count_tokens`` of every message's text; ``tokens.input_tokens`` adds
  the prompt template Cohere wraps around it (``TEMPLATE_TOKENS``), which is not billed. Output:
  ``ServerSettings.output_tokens`` (``x-fake-output-tokens`` header overrides it), capped by
  ``max_tokens`` (then ``finish_reason`` is ``MAX_TOKENS``, else ``COMPLETE``). The stream's
  ``message-end`` event carries the usage in ``delta.usage``.
- Embed: ``meta.billed_units.input_tokens`` = ``count_tokens`` of every text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from costwarden.testing._server import HttpError, JsonResponse, Request, Router, SseEvent, SseResponse
from costwarden.testing._tokens import count_tokens, make_words

__all__ = ["TEMPLATE_TOKENS", "cohere_error", "register"]

TEMPLATE_TOKENS = 7
EMBEDDING_DIMENSIONS = 1024


def cohere_error(status: int, message: str, code: str | None, param: str | None) -> dict[str, Any]:
    """Cohere's error body."""
    return {"id": os.urandom(8).hex(), "message": message}


def register(router: Router) -> None:
    """Add Cohere's v2 chat and embed routes to ``router``."""
    router.add("POST", "/v2/chat", chat, cohere_error, "cohere.chat")
    router.add("POST", "/v2/embed", embed, cohere_error, "cohere.embed")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text(v) for v in value)
    if isinstance(value, dict):
        return _text(value.get("text")) + _text(value.get("content"))
    return ""


def chat(req: Request) -> JsonResponse | SseResponse:
    """``POST /v2/chat``."""
    model = req.body.get("model")
    messages = req.body.get("messages")
    if not isinstance(model, str) or not isinstance(messages, list) or not messages:
        raise HttpError(400, "invalid request: model and a non-empty messages array are required")
    billed_in = count_tokens(_text(messages))
    header = req.headers.get("x-fake-output-tokens")
    want = int(header) if header is not None else req.settings.output_tokens
    limit = req.body.get("max_tokens")
    capped = isinstance(limit, int) and want > limit
    words = make_words(min(want, limit) if isinstance(limit, int) else want)
    usage = {
        "billed_units": {"input_tokens": billed_in, "output_tokens": len(words)},
        "tokens": {"input_tokens": billed_in + TEMPLATE_TOKENS, "output_tokens": len(words)},
    }
    finish = "MAX_TOKENS" if capped else "COMPLETE"
    response_id = os.urandom(16).hex()
    if req.wants_stream:
        return SseResponse(_events(response_id, words, finish, usage), usage)
    message = {"role": "assistant", "content": [{"type": "text", "text": "".join(words)}]}
    body = {"id": response_id, "finish_reason": finish, "message": message, "usage": usage}
    return JsonResponse(body, usage=usage)


def _events(response_id: str, words: list[str], finish: str, usage: dict[str, Any]) -> Iterator[SseEvent]:
    def event(kind: str, **fields: Any) -> SseEvent:
        return SseEvent(json.dumps({"type": kind, **fields}, separators=(",", ":")), event=kind)

    start = {
        "message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    }
    yield event("message-start", id=response_id, delta=start)
    yield event("content-start", index=0, delta={"message": {"content": {"type": "text", "text": ""}}})
    for word in words:
        yield event("content-delta", index=0, delta={"message": {"content": {"text": word}}})
    yield event("content-end", index=0)
    yield event("message-end", delta={"finish_reason": finish, "usage": usage})


def embed(req: Request) -> JsonResponse:
    """``POST /v2/embed``: float embeddings by type, billed input tokens in ``meta``."""
    texts = req.body.get("texts")
    if not isinstance(texts, list) or not texts:
        raise HttpError(400, "invalid request: texts must be a non-empty array")
    tokens = sum(count_tokens(str(t)) for t in texts)
    dims = req.body.get("output_dimension") or EMBEDDING_DIMENSIONS
    vectors = [
        [((sum(map(ord, str(t))) * 31 + i * 17) % 1000) / 1000.0 - 0.5 for i in range(dims)] for t in texts
    ]
    billed = {"input_tokens": tokens}
    meta = {"api_version": {"version": "2"}, "billed_units": billed}
    body = {
        "id": os.urandom(16).hex(),
        "response_type": "embeddings_by_type",
        "embeddings": {"float": vectors},
        "texts": texts,
        "meta": meta,
    }
    return JsonResponse(body, usage=billed)
