"""Google's Gemini API (and Vertex AI's paths to it) for the fake provider.

Routes, for any API version segment (``v1beta``, ``v1``, ``v1beta1``):
``POST /{version}/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``,
``:embedContent``, ``:batchEmbedContents``; the same under ``/{version}/publishers/google/models/`` and
``/{version}/projects/{project}/locations/{location}/publishers/google/models/`` (Vertex AI).

Usage (``usageMetadata``) is deterministic, with ``count_tokens`` from ``_tokens``:

- ``promptTokenCount`` = ``count_tokens`` of every text part of ``contents`` plus ``systemInstruction``
  (no per-turn overhead). ``cachedContentTokenCount``: implicit caching, the ``PromptCache`` rule
  (prefixes of >= 1024 tokens seen before for the same model), part of ``promptTokenCount``.
- A reply's length is ``ServerSettings.output_tokens`` (the ``x-fake-output-tokens`` header overrides
  it), capped by ``generationConfig.maxOutputTokens`` (then ``finishReason`` is ``MAX_TOKENS``).
- Thinking models (``gemini-2.5*``, ``gemini-3*``) spend half of it, rounded down, on thoughts unless
  ``thinkingConfig.thinkingBudget`` is 0 (a positive budget caps the thoughts). As on the real API,
  ``candidatesTokenCount`` EXCLUDES thoughts: ``thoughtsTokenCount`` is reported beside it, and
  ``totalTokenCount = prompt + candidates + thoughts``.
- Streams send one chunk per word; every chunk carries ``usageMetadata`` with the prompt count only,
  the last one the full counts (as the real API does).
- Function calling: when a request declares functions (``tools[].functionDeclarations``),
  ``toolConfig.functionCallingConfig.mode`` is not ``NONE`` and the last content holds no
  ``functionResponse``, the reply is one ``functionCall`` part calling the first declared function
  with its required (else all) parameters filled (``"x"``, ``1``, ``true``); after a function response
  it answers in text (so automatic function calling makes two requests). Output tokens of a call =
  ``count_tokens(name + arguments)``, no thoughts. ``functionCall`` and ``functionResponse`` parts of
  ``contents`` count in ``promptTokenCount`` as ``count_tokens`` of their JSON.
- Embeddings: ``promptTokenCount`` = ``count_tokens`` of every text embedded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from costwarden.testing._openai import fill_args
from costwarden.testing._server import HttpError, JsonResponse, Request, Router, SseEvent, SseResponse
from costwarden.testing._tokens import count_tokens, make_words

__all__ = ["gemini_error", "register"]

_THINKING_PREFIXES = ("gemini-2.5", "gemini-3")
_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}
_PREFIXES = (
    "/{version}/models/",
    "/{version}/publishers/google/models/",
    "/{version}/projects/{project}/locations/{location}/publishers/google/models/",
)
EMBEDDING_DIMENSIONS = 768


def gemini_error(status: int, message: str, code: str | None, param: str | None) -> dict[str, Any]:
    """Google's error body."""
    return {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}}


def register(router: Router) -> None:
    """Add the Gemini API's and Vertex AI's generate and embed routes to ``router``."""
    ops = {
        "generateContent": generate_content,
        "streamGenerateContent": generate_content,
        "embedContent": embed_content,
        "batchEmbedContents": batch_embed_contents,
    }
    for prefix in _PREFIXES:
        for op, handler in ops.items():
            router.add("POST", f"{prefix}{{model}}:{op}", handler, gemini_error, f"gemini.{op}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text(v) for v in value)
    if isinstance(value, dict):
        if "parts" in value:
            return _text(value["parts"])
        for key in ("functionCall", "functionResponse"):
            if key in value:
                return json.dumps(value[key], sort_keys=True)
        text = value.get("text")
        return text if isinstance(text, str) else ""
    return ""


@dataclass(frozen=True)
class _FunctionCall:
    """The function call a reply makes."""

    name: str
    args: dict[str, Any]

    @property
    def tokens(self) -> int:
        return count_tokens(self.name + json.dumps(self.args))


def _lower_types(schema: Any) -> Any:
    """A schema with Gemini's upper-case type names (``STRING``) in JSON Schema's spelling."""
    if isinstance(schema, dict):
        return {
            k: v.lower() if k == "type" and isinstance(v, str) else _lower_types(v) for k, v in schema.items()
        }
    return schema


def _function_args(declaration: dict[str, Any]) -> dict[str, Any]:
    schema = next(
        (
            declaration[k]
            for k in ("parameters", "parametersJsonSchema", "parameters_json_schema")
            if k in declaration
        ),
        None,
    )
    schema = _lower_types(schema)
    if isinstance(schema, dict) and "required" not in schema:  # older SDKs send no ``required``
        schema = {**schema, "required": list(schema.get("properties") or ())}
    return fill_args(schema)


def _function_call(body: dict[str, Any]) -> _FunctionCall | None:
    declarations = [
        d
        for tool in body.get("tools") or ()
        if isinstance(tool, dict)
        for d in tool.get("functionDeclarations") or ()
    ]
    mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")
    if not declarations or mode == "NONE":
        return None
    last = (body.get("contents") or [{}])[-1]
    parts = last.get("parts") or () if isinstance(last, dict) else ()
    if any(isinstance(p, dict) and "functionResponse" in p for p in parts):
        return None
    return _FunctionCall(str(declarations[0].get("name", "tool")), _function_args(declarations[0]))


def _output_plan(req: Request, model: str) -> tuple[int, int, bool]:
    """(visible tokens, thought tokens, capped) for this request."""
    config = req.body.get("generationConfig") or {}
    header = req.headers.get("x-fake-output-tokens")
    want = int(header) if header is not None else req.settings.output_tokens
    limit = config.get("maxOutputTokens")
    total = want if not isinstance(limit, int) else min(want, limit)
    thoughts = total // 2 if model.startswith(_THINKING_PREFIXES) else 0
    budget = (config.get("thinkingConfig") or {}).get("thinkingBudget")
    if isinstance(budget, int) and budget >= 0:
        thoughts = min(thoughts, budget)
    return total - thoughts, thoughts, isinstance(limit, int) and want > limit


@dataclass(frozen=True)
class _Reply:
    """What a generate request answers: ``chunks`` (one part per streamed chunk), and its token counts."""

    chunks: list[dict[str, Any]]
    visible: int
    thoughts: int
    capped: bool

    def parts(self) -> list[dict[str, Any]]:
        """The parts of the whole (not streamed) reply: a text in one part."""
        if all("text" in p for p in self.chunks):
            return [{"text": "".join(p["text"] for p in self.chunks)}]
        return self.chunks


def _reply(req: Request, model: str) -> _Reply:
    call = _function_call(req.body)
    if call is not None:
        return _Reply([{"functionCall": {"name": call.name, "args": call.args}}], call.tokens, 0, False)
    visible, thoughts, capped = _output_plan(req, model)
    words = make_words(visible) if req.settings.reply is None else [req.settings.reply[: visible * 4]]
    return _Reply([{"text": w} for w in words or [""]], visible, thoughts, capped)


def generate_content(req: Request) -> JsonResponse | SseResponse:
    """``:generateContent`` and ``:streamGenerateContent`` (SSE when ``alt=sse``)."""
    model = req.params["model"]
    contents = req.body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise HttpError(400, "* GenerateContentRequest.contents: contents is not specified")
    canonical = _text(req.body.get("systemInstruction")) + "\n" + _text(contents)
    prompt = count_tokens(_text(req.body.get("systemInstruction"))) + sum(
        count_tokens(_text(c)) for c in contents
    )
    cached = req.cache.lookup_and_store(model, canonical, prompt)
    reply = _reply(req, model)
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": reply.visible,
        "totalTokenCount": prompt + reply.visible + reply.thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if cached:
        usage["cachedContentTokenCount"] = cached
    if reply.thoughts:
        usage["thoughtsTokenCount"] = reply.thoughts
    head = {"modelVersion": req.settings.model_map.get(model, model), "responseId": os.urandom(9).hex()}
    finish = "MAX_TOKENS" if reply.capped else "STOP"
    if req.path.endswith(":streamGenerateContent"):
        return SseResponse(_chunks(head, reply.chunks, finish, usage), usage)
    candidate = {"content": {"role": "model", "parts": reply.parts()}, "finishReason": finish, "index": 0}
    return JsonResponse({"candidates": [candidate], "usageMetadata": usage, **head}, usage=usage)


def _chunks(
    head: dict[str, Any], parts: list[dict[str, Any]], finish: str, usage: dict[str, Any]
) -> Iterator[SseEvent]:
    partial = {"promptTokenCount": usage["promptTokenCount"], "totalTokenCount": usage["promptTokenCount"]}
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": 0}
        if last:
            candidate["finishReason"] = finish
        body = {"candidates": [candidate], "usageMetadata": usage if last else partial, **head}
        yield SseEvent(json.dumps(body, separators=(",", ":")))


def _vector(text: str, dims: int) -> list[float]:
    seed = sum(map(ord, text))
    return [((seed * 31 + i * 17) % 1000) / 1000.0 - 0.5 for i in range(dims)]


def _embedding(request: dict[str, Any]) -> tuple[dict[str, Any], int]:
    text = _text(request.get("content"))
    dims = request.get("outputDimensionality") or EMBEDDING_DIMENSIONS
    return {"values": _vector(text, int(dims))}, count_tokens(text)


def embed_content(req: Request) -> JsonResponse:
    """``:embedContent``: one content."""
    if "content" not in req.body:
        raise HttpError(400, "* EmbedContentRequest.content: content is not specified")
    embedding, tokens = _embedding(req.body)
    usage = {"promptTokenCount": tokens, "totalTokenCount": tokens}
    return JsonResponse({"embedding": embedding, "usageMetadata": usage}, usage=usage)


def batch_embed_contents(req: Request) -> JsonResponse:
    """``:batchEmbedContents``: ``requests`` with one content each."""
    requests = req.body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise HttpError(400, "* BatchEmbedContentsRequest.requests: requests is not specified")
    results = [_embedding(r) for r in requests]
    tokens = sum(t for _, t in results)
    usage = {"promptTokenCount": tokens, "totalTokenCount": tokens}
    return JsonResponse({"embeddings": [e for e, _ in results], "usageMetadata": usage}, usage=usage)
