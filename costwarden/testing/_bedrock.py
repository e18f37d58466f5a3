"""AWS Bedrock Runtime's HTTP API for the fake provider (point boto3 at it with ``endpoint_url=``).

Routes: ``POST /model/{model}/converse``, ``/converse-stream``, ``/invoke`` and
``/invoke-with-response-stream``. Streams use AWS's binary event-stream framing (prelude with total and
header lengths, its CRC32, typed headers, payload, message CRC32), which botocore parses. The anthropic
SDK's ``AnthropicBedrock`` clients use the InvokeModel routes too. An Anthropic body must carry an
``anthropic_version`` from ``ANTHROPIC_VERSIONS``; a missing or unknown one is a 400 ValidationException.

Usage is deterministic, with ``count_tokens`` from ``_tokens``:

- Input = ``count_tokens`` of every text in ``system`` and ``messages`` (Converse, Anthropic and Amazon
  Nova ``messages-v1`` bodies) or of ``prompt`` (Meta bodies). Converse: a ``cachePoint`` block makes
  the text before it a cached prefix: the first request writes it (``cacheWriteInputTokens``), a later
  one for the same model reads it (``cacheReadInputTokens``) once it is >= 1024 tokens (the
  ``PromptCache`` rule). As on the real API, ``inputTokens`` EXCLUDES cache reads and writes.
- Output: ``ServerSettings.output_tokens`` (``x-fake-output-tokens`` header overrides it), capped by
  ``inferenceConfig.maxTokens`` / ``max_tokens`` (Anthropic) / ``max_gen_len`` (Meta) /
  ``inferenceConfig.max_new_tokens`` (Nova), then the stop reason is ``max_tokens`` / ``length``.
- Usage is reported where Bedrock reports it: Converse ``usage``, the ``metadata`` stream event,
  Anthropic body ``usage`` and ``message_start``/``message_delta`` events, Meta ``prompt_token_count`` /
  ``generation_token_count``, Nova body ``usage`` and ``metadata`` chunk, the
  ``x-amzn-bedrock-*-token-count`` headers of InvokeModel and ``amazon-bedrock-invocationMetrics`` on
  a response stream's last chunk.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from costwarden.testing._server import HttpError, JsonResponse, Request, Router, SseResponse
from costwarden.testing._tokens import count_tokens, make_words

__all__ = ["EventStreamMessage", "bedrock_error", "register"]

EVENT_STREAM = "application/vnd.amazon.eventstream"
_ERROR_TYPES = {400: "ValidationException", 429: "ThrottlingException", 500: "InternalServerException"}


def bedrock_error(status: int, message: str, code: str | None, param: str | None) -> dict[str, Any]:
    """Bedrock's error body (restJson1: ``__type`` names the exception)."""
    return {"__type": _ERROR_TYPES.get(status, "InternalServerException"), "message": message}


@dataclass(frozen=True, slots=True)
class EventStreamMessage:
    """One AWS event-stream message with string headers."""

    headers: dict[str, str]
    payload: bytes

    def encode(self) -> bytes:
        encoded = b""
        for name, value in self.headers.items():
            raw_name, raw_value = name.encode(), value.encode()
            encoded += (
                struct.pack(">B", len(raw_name))
                + raw_name
                + struct.pack(">BH", 7, len(raw_value))
                + raw_value
            )
        total = 12 + len(encoded) + len(self.payload) + 4
        prelude = struct.pack(">II", total, len(encoded))
        prelude += struct.pack(">I", binascii.crc32(prelude))
        message = prelude + encoded + self.payload
        return message + struct.pack(">I", binascii.crc32(message))


def _event(event_type: str, payload: dict[str, Any]) -> EventStreamMessage:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return EventStreamMessage(headers, json.dumps(payload, separators=(",", ":")).encode())


def register(router: Router) -> None:
    """Add Bedrock Runtime's Converse and InvokeModel routes to ``router``."""
    routes = {
        "converse": converse,
        "converse-stream": converse,
        "invoke": invoke,
        "invoke-with-response-stream": invoke,
    }
    for op, handler in routes.items():
        router.add("POST", f"/model/{{model}}/{op}", handler, bedrock_error, f"bedrock.{op}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text(v) for v in value)
    if isinstance(value, dict):
        return _text(value.get("text")) + _text(value.get("content"))
    return ""


def _output(req: Request, limit: Any) -> tuple[list[str], bool]:
    header = req.headers.get("x-fake-output-tokens")
    want = int(header) if header is not None else req.settings.output_tokens
    capped = isinstance(limit, int) and want > limit
    n = min(want, limit) if isinstance(limit, int) else want
    return make_words(n), capped


# ---------------------------------------------------------------- Converse


def _converse_input(req: Request, model: str) -> dict[str, int]:
    """inputTokens / cacheReadInputTokens / cacheWriteInputTokens for a Converse request."""
    blocks = list(req.body.get("system") or [])
    for message in req.body.get("messages") or []:
        blocks.extend(message.get("content") or [])
    total = count_tokens("".join(_text(b) for b in blocks))
    cut = next((i for i, b in enumerate(blocks) if isinstance(b, dict) and "cachePoint" in b), None)
    if cut is None:
        return {"inputTokens": total}
    prefix = "".join(_text(b) for b in blocks[:cut])
    prefix_tokens = count_tokens(prefix)
    read = req.cache.lookup_and_store(model, prefix, prefix_tokens)
    usage = {"inputTokens": total - prefix_tokens}
    usage["cacheReadInputTokens" if read else "cacheWriteInputTokens"] = prefix_tokens
    return usage


def converse(req: Request) -> JsonResponse | SseResponse:
    """``/converse`` and ``/converse-stream``."""
    model = unquote(req.params["model"])
    if not isinstance(req.body.get("messages"), list) or not req.body["messages"]:
        raise HttpError(400, "The messages field is required and must not be empty.")
    words, capped = _output(req, (req.body.get("inferenceConfig") or {}).get("maxTokens"))
    usage: dict[str, Any] = _converse_input(req, model)
    usage["outputTokens"] = len(words)
    usage["totalTokens"] = sum(usage.values())
    stop = "max_tokens" if capped else "end_turn"
    if req.path.endswith("/converse-stream"):
        return SseResponse(_converse_events(words, stop, usage), usage, content_type=EVENT_STREAM)
    message = {"role": "assistant", "content": [{"text": "".join(words)}]}
    body = {"output": {"message": message}, "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 42}}
    return JsonResponse(body, usage=usage)


def _converse_events(words: list[str], stop: str, usage: dict[str, Any]) -> Iterator[EventStreamMessage]:
    yield _event("messageStart", {"role": "assistant"})
    for word in words:
        yield _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": word}})
    yield _event("contentBlockStop", {"contentBlockIndex": 0})
    yield _event("messageStop", {"stopReason": stop})
    yield _event("metadata", {"usage": usage, "metrics": {"latencyMs": 42}})


# ---------------------------------------------------------------- InvokeModel


def invoke(req: Request) -> JsonResponse | SseResponse:
    """``/invoke`` and ``/invoke-with-response-stream`` for Anthropic, Meta and Amazon Nova model bodies."""
    model = unquote(req.params["model"])
    stream = req.path.endswith("/invoke-with-response-stream")
    family = next(
        (f for f in ("anthropic", "meta", "amazon.nova") if f".{f}" in f".{model}"), None
    )  # us.anthropic.claude...
    if family == "anthropic":
        _check_anthropic_version(req.body.get("anthropic_version"))
        prompt = count_tokens(_text(req.body.get("system")) + _text(req.body.get("messages")))
        words, capped = _output(req, req.body.get("max_tokens"))
        chunks = _anthropic_chunks(model, prompt, words, capped) if stream else None
        body = _anthropic_body(model, prompt, words, capped)
    elif family == "meta":
        prompt = count_tokens(str(req.body.get("prompt") or ""))
        words, capped = _output(req, req.body.get("max_gen_len"))
        chunks = _meta_chunks(prompt, words, capped) if stream else None
        body = {
            "generation": "".join(words),
            "prompt_token_count": prompt,
            "generation_token_count": len(words),
            "stop_reason": "length" if capped else "stop",
        }
    elif family == "amazon.nova":
        prompt, words, capped = _nova_plan(req)
        chunks = _nova_chunks(prompt, words, capped) if stream else None
        body = _nova_body(prompt, words, capped)
    else:
        raise HttpError(400, f"The fake provider does not speak the body format of model {model!r}.")
    usage = {"inputTokenCount": prompt, "outputTokenCount": len(words)}
    if chunks is not None:
        return SseResponse(_with_metrics(chunks, usage), usage, content_type=EVENT_STREAM)
    headers = {
        "x-amzn-bedrock-input-token-count": str(prompt),
        "x-amzn-bedrock-output-token-count": str(len(words)),
    }
    return JsonResponse(body, headers=headers, usage=usage)


# Bedrock's documented Messages version, and the one the anthropic SDK's ``AnthropicBedrock`` sends from
# 2.0 on (its ``ANTHROPIC_API_VERSION``, set in the body when the app gives none).
ANTHROPIC_VERSIONS = ("bedrock-2023-05-31", "2026-10-21")


def _check_anthropic_version(version: Any) -> None:
    """400 for an Anthropic body without a known ``anthropic_version``, worded as Bedrock words it."""
    if version is None:
        raise HttpError(
            400,
            "Malformed input request: #: required key [anthropic_version] not found, "
            "please reformat your input and try again.",
        )
    if version not in ANTHROPIC_VERSIONS:
        accepted = ", ".join(ANTHROPIC_VERSIONS)
        raise HttpError(400, f"Invalid API version: {version} (accepted: {accepted})")


def _anthropic_body(model: str, prompt: int, words: list[str], capped: bool) -> dict[str, Any]:
    return {
        "id": "msg_bdrk_" + os.urandom(8).hex(),
        "type": "message",
        "role": "assistant",
        "model": model.split(".", 1)[-1].rsplit("-v", 1)[0],
        "content": [{"type": "text", "text": "".join(words)}],
        "stop_reason": "max_tokens" if capped else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": prompt, "output_tokens": len(words)},
    }


def _anthropic_chunks(model: str, prompt: int, words: list[str], capped: bool) -> list[dict[str, Any]]:
    start = _anthropic_body(model, prompt, [], False)
    start["usage"] = {"input_tokens": prompt, "output_tokens": 1}
    stop = "max_tokens" if capped else "end_turn"
    return [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
            for w in words
        ),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": len(words)}},
        {"type": "message_stop"},
    ]


def _meta_chunks(prompt: int, words: list[str], capped: bool) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = [
        {"generation": w, "prompt_token_count": prompt if i == 0 else None, "generation_token_count": i + 1}
        for i, w in enumerate(words)
    ]
    chunks.append(
        {
            "generation": "",
            "generation_token_count": len(words),
            "stop_reason": "length" if capped else "stop",
        }
    )
    return chunks


def _nova_plan(req: Request) -> tuple[int, list[str], bool]:
    """(input tokens, reply words, capped) of an Amazon Nova (``messages-v1``) body."""
    if not isinstance(req.body.get("messages"), list) or not req.body["messages"]:
        raise HttpError(400, "Malformed input request: #: required key [messages] not found")
    prompt = count_tokens(_text(req.body.get("system")) + _text(req.body.get("messages")))
    words, capped = _output(req, (req.body.get("inferenceConfig") or {}).get("max_new_tokens"))
    return prompt, words, capped


def _nova_usage(prompt: int, words: list[str]) -> dict[str, int]:
    return {"inputTokens": prompt, "outputTokens": len(words), "totalTokens": prompt + len(words)}


def _nova_body(prompt: int, words: list[str], capped: bool) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": "".join(words)}]}},
        "stopReason": "max_tokens" if capped else "end_turn",
        "usage": _nova_usage(prompt, words),
    }


def _nova_chunks(prompt: int, words: list[str], capped: bool) -> list[dict[str, Any]]:
    return [
        {"messageStart": {"role": "assistant"}},
        *({"contentBlockDelta": {"delta": {"text": w}, "contentBlockIndex": 0}} for w in words),
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "max_tokens" if capped else "end_turn"}},
        {"metadata": {"usage": _nova_usage(prompt, words), "metrics": {}, "trace": {}}},
    ]


def _with_metrics(chunks: list[dict[str, Any]], usage: dict[str, int]) -> Iterator[EventStreamMessage]:
    chunks[-1] = {**chunks[-1], "amazon-bedrock-invocationMetrics": {**usage, "invocationLatency": 42}}
    for chunk in chunks:
        data = base64.b64encode(json.dumps(chunk, separators=(",", ":")).encode()).decode()
        yield _event("chunk", {"bytes": data})
