"""Anthropic's Messages API (and the Vertex AI and Bedrock paths to it) for the fake provider.

Routes: ``POST /v1/messages`` (JSON, or SSE when ``stream`` is true), ``POST /v1/messages/count_tokens``;
Vertex AI: ``:rawPredict`` and ``:streamRawPredict`` under
``/{version}/projects/{project}/locations/{location}/publishers/anthropic/models/{model}``
(``count-tokens:rawPredict`` counts). Bedrock's ``/model/{model}/invoke`` paths,
which the SDK's ``AnthropicBedrock`` uses, are served by ``_bedrock``.

Usage is deterministic (``count_tokens`` from ``_tokens``):

- The prompt is read in Anthropic's cache order: ``tools`` (each tool's JSON), ``system``, then every
  content block of ``messages`` (text, a tool call's name and input JSON, a tool result's text).
  Prompt tokens = the sum of ``count_tokens`` over those blocks.
- Prompt caching: a block with ``cache_control`` (or a top-level ``cache_control``, which marks the end
  of the prompt) is a breakpoint. The prefix up to the last breakpoint this server saw before for the
  same model is a cache read; the rest up to the last breakpoint is a cache write when it is at least
  1024 tokens (2048 for Haiku models). As on the real API, ``input_tokens`` EXCLUDES both:
  ``input_tokens = prompt - cache_read_input_tokens - cache_creation_input_tokens``.
- Cache lifetimes: a breakpoint's ``cache_control.ttl`` (``5m`` by default, or ``1h``) is the lifetime
  of the tokens written between the breakpoint before it and it. When the request has a ``1h``
  breakpoint, the usage block breaks the write down as the real API does: ``cache_creation:
  {ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}`` (also in ``message_start``).
- Output: a reply's natural length is ``ServerSettings.output_tokens`` (the ``x-fake-output-tokens``
  header overrides it), capped by ``max_tokens`` (then ``stop_reason`` is ``max_tokens``, otherwise
  ``end_turn``).
- Extended thinking (``thinking.type`` ``enabled`` or ``adaptive``): half of the output, rounded down and
  capped by ``budget_tokens``, is a ``thinking`` block. As on the real API, ``output_tokens`` INCLUDES
  the thinking (``output_tokens_details.thinking_tokens`` says how much).
- Tools: when ``tool_choice`` is ``any`` or names a tool, the reply is a ``tool_use`` block calling it
  (the named or first tool) with its required parameters filled; output tokens =
  ``count_tokens(input JSON)``, ``stop_reason`` ``tool_use``.
- Streams follow the real event sequence: ``message_start`` (usage with the input counts and
  ``output_tokens: 1``), then per block ``content_block_start``, one delta per word
  (``text_delta``, ``thinking_delta`` then ``signature_delta``, ``input_json_delta``),
  ``content_block_stop``; a ``ping`` after the first block starts; ``message_delta`` (``stop_reason``,
  cumulative ``output_tokens``); ``message_stop``.
- ``count_tokens``: ``{"input_tokens": prompt tokens}``, no caching.
- Reported ``model`` = ``ServerSettings.model_map.get(model, model)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from costwarden.testing._openai import _natural_tokens, fill_args, split_text
from costwarden.testing._server import HttpError, JsonResponse, Request, Router, SseEvent, SseResponse
from costwarden.testing._tokens import count_tokens, make_words

__all__ = ["anthropic_error", "register"]

CACHE_MIN_TOKENS = 1024
CACHE_MIN_TOKENS_HAIKU = 2048
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_VERTEX = "/{version}/projects/{project}/locations/{location}/publishers/anthropic/models/{model}"


def anthropic_error(status: int, message: str, code: str | None, param: str | None) -> dict[str, Any]:
    """Anthropic's error body."""
    return {"type": "error", "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}}


def register(router: Router) -> None:
    """Add Anthropic's Messages routes, and Vertex AI's paths to them, to ``router``."""
    router.add("POST", "/v1/messages", messages, anthropic_error, "anthropic.messages")
    router.add("POST", "/v1/messages/count_tokens", count, anthropic_error, "anthropic.count_tokens")
    for op in ("rawPredict", "streamRawPredict"):
        router.add("POST", f"{_VERTEX}:{op}", messages, anthropic_error, f"vertex.anthropic.{op}")


# ---------------------------------------------------------------- the prompt


def _block_text(block: Any) -> str:
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    kind = block.get("type")
    if kind == "tool_use":
        return str(block.get("name", "")) + json.dumps(block.get("input", {}))
    if kind == "tool_result":
        content = block.get("content")
        return content if isinstance(content, str) else "".join(_block_text(b) for b in content or ())
    text = block.get("text") or block.get("thinking") or ""
    return text if isinstance(text, str) else ""


def _ttl(block: Any) -> str | None:
    """The cache lifetime of a breakpoint block (``5m`` or ``1h``), None for a block that is none."""
    control = block.get("cache_control") if isinstance(block, dict) else None
    if not control:
        return None
    return "1h" if isinstance(control, dict) and control.get("ttl") == "1h" else "5m"


def _blocks(body: dict[str, Any]) -> list[tuple[str, str | None]]:
    """The prompt as (text, cache lifetime if a breakpoint) blocks, in cache order: tools, system,
    messages."""
    out = [(json.dumps(t, sort_keys=True), _ttl(t)) for t in body.get("tools") or ()]
    system = body.get("system")
    if isinstance(system, str):
        out.append((system, None))
    else:
        out += [(_block_text(b), _ttl(b)) for b in system or ()]
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            out.append((content, None))
            continue
        out += [(_block_text(b), _ttl(b)) for b in content or ()]
    if body.get("cache_control") and out:
        out[-1] = (out[-1][0], _ttl(body))
    return out


@dataclass(frozen=True, slots=True)
class _Prompt:
    tokens: int
    cache_read: int
    cache_write: int
    cache_write_1h: int = 0
    """Of ``cache_write``, the tokens written to a 1-hour cache."""
    ttl_breakdown: bool = False
    """Whether the request asked for a 1-hour cache, so the usage block breaks the write down."""


def _prompt(req: Request, model: str) -> _Prompt:
    blocks = _blocks(req.body)
    total, prefix, breakpoints = 0, "", []
    for text, ttl in blocks:
        total += count_tokens(text)
        prefix += text + "\x1e"
        if ttl is not None:
            breakpoints.append((total, prefix, ttl))
    minimum = CACHE_MIN_TOKENS_HAIKU if "haiku" in model else CACHE_MIN_TOKENS
    read = 0
    for tokens, text, _ in breakpoints:
        if req.cache.seen_before(model, text) and tokens >= minimum:
            read = tokens
    last = breakpoints[-1][0] if breakpoints else 0
    write = last - read if last >= minimum and last > read else 0
    long_lived = _written_1h(breakpoints, read, read + write)
    return _Prompt(total, read, write, long_lived, any(ttl == "1h" for *_, ttl in breakpoints))


def _written_1h(breakpoints: list[tuple[int, str, str]], start: int, end: int) -> int:
    """The tokens of the write ``(start, end]`` that a 1-hour breakpoint ends the segment of."""
    written, previous = 0, 0
    for tokens, _, ttl in breakpoints:
        if ttl == "1h":
            written += max(0, min(tokens, end) - max(previous, start))
        previous = tokens
    return written


def _model(req: Request) -> str:
    model = req.params.get("model") or req.body.get("model")
    if not isinstance(model, str) or not model:
        raise HttpError(400, "model: Field required")
    return model


# ---------------------------------------------------------------- the reply


@dataclass(frozen=True, slots=True)
class _Block:
    kind: str  # text | thinking | tool_use
    pieces: list[str]  # the stream deltas
    tokens: int
    name: str = ""
    tool_id: str = ""

    def body(self) -> dict[str, Any]:
        joined = "".join(self.pieces)
        if self.kind == "thinking":
            return {"type": "thinking", "thinking": joined, "signature": _SIGNATURE}
        if self.kind == "tool_use":
            return {"type": "tool_use", "id": self.tool_id, "name": self.name, "input": json.loads(joined)}
        return {"type": "text", "text": joined}


_SIGNATURE = "ZmFrZS1zaWduYXR1cmU="


def _tool_block(body: dict[str, Any]) -> _Block | None:
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and "name" in t]
    choice = body.get("tool_choice") or {}
    if not tools or choice.get("type") not in ("any", "tool"):
        return None
    tool = next((t for t in tools if t["name"] == choice.get("name")), tools[0])
    arguments = json.dumps(fill_args(tool.get("input_schema")))
    tool_id = "toolu_" + os.urandom(12).hex()
    return _Block("tool_use", split_text(arguments), count_tokens(arguments), tool["name"], tool_id)


def _reply(req: Request, model: str) -> tuple[list[_Block], str]:
    """The content blocks of the reply and its stop_reason."""
    body = req.body
    limit = body.get("max_tokens")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise HttpError(400, "max_tokens: Field required (an integer >= 1)")
    tool = _tool_block(body)
    if tool is not None:
        return [tool], "tool_use"
    want = _natural_tokens(req)
    total = min(want, limit)
    thinking = body.get("thinking") or {}
    thought = 0
    if thinking.get("type") in ("enabled", "adaptive"):
        budget = thinking.get("budget_tokens")
        thought = min(total // 2, budget) if isinstance(budget, int) else total // 2
    visible = total - thought
    reply = req.settings.reply
    words = make_words(visible) if reply is None else split_text(reply[: visible * 4])
    blocks = [_Block("thinking", make_words(thought, seed=7), thought)] if thought else []
    blocks.append(_Block("text", words, visible))
    return blocks, "max_tokens" if want > limit else "end_turn"


def _usage(prompt: _Prompt, output: int, thought: int) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "input_tokens": prompt.tokens - prompt.cache_read - prompt.cache_write,
        "cache_creation_input_tokens": prompt.cache_write,
        "cache_read_input_tokens": prompt.cache_read,
        "output_tokens": output,
        "service_tier": "standard",
    }
    if prompt.ttl_breakdown:
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": prompt.cache_write - prompt.cache_write_1h,
            "ephemeral_1h_input_tokens": prompt.cache_write_1h,
        }
    if thought:
        usage["output_tokens_details"] = {"thinking_tokens": thought}
    return usage


# ---------------------------------------------------------------- handlers


def messages(req: Request) -> JsonResponse | SseResponse:
    """``POST /v1/messages`` (and Vertex AI's ``rawPredict`` / ``streamRawPredict``)."""
    model = _model(req)
    if model == "count-tokens":  # Vertex AI counts at .../models/count-tokens:rawPredict
        return count(req)
    if not isinstance(req.body.get("messages"), list) or not req.body["messages"]:
        raise HttpError(400, "messages: Field required (a non-empty list)")
    _check_tool_pairs(req.body["messages"])
    blocks, stop_reason = _reply(req, model)
    prompt = _prompt(req, model)
    thought = sum(b.tokens for b in blocks if b.kind == "thinking")
    usage = _usage(prompt, sum(b.tokens for b in blocks), thought)
    head = {
        "id": "msg_" + os.urandom(12).hex(),
        "type": "message",
        "role": "assistant",
        "model": req.settings.model_map.get(model, model),
    }
    if req.wants_stream or req.path.endswith(":streamRawPredict"):
        return SseResponse(_events(head, blocks, stop_reason, usage), usage)
    body = {**head, "content": [b.body() for b in blocks], "stop_reason": stop_reason}
    return JsonResponse({**body, "stop_sequence": None, "usage": usage}, usage=usage)


def _ids(message: Any, kind: str, key: str) -> list[str]:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [str(b.get(key)) for b in content if isinstance(b, dict) and b.get("type") == kind]


def _check_tool_pairs(messages: list[Any]) -> None:
    """As the API does: each ``tool_use`` answered by a ``tool_result`` in the next message, and each
    ``tool_result`` answering a ``tool_use`` of the previous one."""
    for index, message in enumerate(messages):
        asked = _ids(messages[index - 1], "tool_use", "id") if index else []
        for answered in _ids(message, "tool_result", "tool_use_id"):
            if answered not in asked:
                raise HttpError(
                    400,
                    f"messages.{index}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{answered}. Each `tool_result` block must have a corresponding `tool_use` block in "
                    "the previous message.",
                )
        if index + 1 < len(messages):
            answered_next = set(_ids(messages[index + 1], "tool_result", "tool_use_id"))
            missing = [i for i in _ids(message, "tool_use", "id") if i not in answered_next]
            if missing:
                raise HttpError(
                    400,
                    f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message.",
                )


def count(req: Request) -> JsonResponse:
    """``POST /v1/messages/count_tokens``: the prompt's tokens, nothing generated, nothing cached."""
    if not isinstance(req.body.get("messages"), list):
        raise HttpError(400, "messages: Field required")
    tokens = sum(count_tokens(text) for text, _ in _blocks(req.body))
    return JsonResponse({"input_tokens": tokens})


def _event(kind: str, **fields: Any) -> SseEvent:
    return SseEvent(json.dumps({"type": kind, **fields}, separators=(",", ":")), kind)


def _empty(block: _Block) -> dict[str, Any]:
    """A block as ``content_block_start`` announces it: its deltas not yet applied."""
    if block.kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if block.kind == "tool_use":
        return {"type": "tool_use", "id": block.tool_id, "name": block.name, "input": {}}
    return {"type": "text", "text": ""}


_DELTAS = {"text": ("text_delta", "text"), "thinking": ("thinking_delta", "thinking")}


def _events(
    head: dict[str, Any], blocks: list[_Block], stop_reason: str, usage: dict[str, Any]
) -> Iterator[SseEvent]:
    start_usage = {**usage, "output_tokens": 1}
    start_usage.pop("output_tokens_details", None)
    message = {**head, "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}
    yield _event("message_start", message=message)
    for index, block in enumerate(blocks):
        yield _event("content_block_start", index=index, content_block=_empty(block))
        if index == 0:
            yield _event("ping")
        for piece in block.pieces:
            if block.kind == "tool_use":
                delta = {"type": "input_json_delta", "partial_json": piece}
            else:
                delta_type, key = _DELTAS[block.kind]
                delta = {"type": delta_type, key: piece}
            yield _event("content_block_delta", index=index, delta=delta)
        if block.kind == "thinking":
            signature = {"type": "signature_delta", "signature": _SIGNATURE}
            yield _event("content_block_delta", index=index, delta=signature)
        yield _event("content_block_stop", index=index)
    delta_usage = {"output_tokens": usage["output_tokens"]}
    if "output_tokens_details" in usage:
        delta_usage["output_tokens_details"] = usage["output_tokens_details"]
    stop: dict[str, Any] = {"stop_reason": stop_reason, "stop_sequence": None}
    yield _event("message_delta", delta=stop, usage=delta_usage)
    yield _event("message_stop")
