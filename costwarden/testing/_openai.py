"""OpenAI's HTTP API (and Azure OpenAI's paths to it) for the fake provider.

Routes: ``POST /v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings``, ``/v1/completions``;
Azure: ``/openai/deployments/{deployment}/<op>?api-version=...`` (the reported model is the deployment),
``/openai/v1/<op>`` and ``/openai/<op>``.

Usage is deterministic (``count_tokens(text) = ceil(len(text) / 4)``, see ``_tokens``):

- Chat input tokens = ``3 + sum(4 + count_tokens(message text))`` over messages, plus
  ``count_tokens(json(tools))`` when tools are sent. A message's text is its string content, the
  ``text`` of its content parts, its ``name`` and its tool calls' names and arguments.
- Responses input tokens: the same, with ``instructions`` as a first system message and a string
  ``input`` as one user message. Legacy completions: ``count_tokens(prompt)``. Embeddings:
  ``count_tokens`` of each input (token-id lists count their length), summed.
- Output: a reply's natural length is ``ServerSettings.output_tokens`` (24 by default; the
  ``x-fake-output-tokens`` request header overrides it), or the length of ``ServerSettings.reply``.
  ``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens`` cap it; a capped reply ends with
  finish_reason ``length`` (Responses: status ``incomplete``), otherwise ``stop``. The text has exactly
  that many tokens by ``count_tokens``, and streams as one delta per token.
- Reasoning models (name starts with ``o1``, ``o3``, ``o4`` or ``gpt-5``) spend half of the output
  tokens, rounded down, on reasoning: ``reasoning_tokens = output // 2``, visible text the rest.
- ``n`` choices each get a full reply; completion tokens are summed over choices.
- Cached input: the longest prefix of >= 1024 tokens, in steps of 128, that this server saw before for
  the same model (see ``PromptCache``), capped at the input tokens.
- Tools: when a chat request carries ``tools``, ``tool_choice`` is not ``"none"`` and the last message is
  not a ``tool`` result, the reply calls the named (or first) function with its required parameters
  filled (``"x"``, ``1``, ``true``), finish_reason ``tool_calls``; after a tool result it answers in text.
  Output tokens of a tool call = ``count_tokens(name + arguments)``.
- Reported ``model`` = ``ServerSettings.model_map.get(model, model)``.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from costwarden.testing._server import HttpError, JsonResponse, Request, Router, SseEvent, SseResponse
from costwarden.testing._tokens import count_tokens, make_words

__all__ = ["openai_error", "register"]

REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072}
DEFAULT_EMBEDDING_DIMENSIONS = 1536
_FINGERPRINT = "fp_costwarden"


def openai_error(status: int, message: str, code: str | None, param: str | None) -> dict[str, Any]:
    """OpenAI's error body."""
    kind = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error"}
    err_type = "requests" if status == 429 else kind.get(status, "server_error")
    return {"error": {"message": message, "type": err_type, "param": param, "code": code}}


def register(router: Router) -> None:
    """Add OpenAI's and Azure OpenAI's routes to ``router``."""
    from costwarden.testing._openai_responses import responses  # it builds on this module's helpers

    ops = {
        "chat/completions": chat_completions,
        "completions": completions,
        "embeddings": embeddings,
        "responses": responses,
    }
    for op, handler in ops.items():
        router.add("POST", f"/v1/{op}", handler, openai_error, f"openai.{op}")
        router.add("POST", f"/openai/v1/{op}", handler, openai_error, f"azure.{op}")
        router.add("POST", f"/openai/{op}", handler, openai_error, f"azure.{op}")
        if op != "responses":
            deployment_path = f"/openai/deployments/{{deployment}}/{op}"
            router.add("POST", deployment_path, handler, openai_error, f"azure.{op}")


# ---------------------------------------------------------------- request reading


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def request_model(req: Request) -> str:
    deployment = req.params.get("deployment")
    if deployment:
        if "api-version" not in req.query:
            raise HttpError(404, "Resource not found: the api-version query parameter is missing.")
        return deployment
    model = req.body.get("model")
    if not isinstance(model, str) or not model:
        raise HttpError(400, "you must provide a model parameter", param="model")
    return model


def reported_model(req: Request, model: str) -> str:
    return req.settings.model_map.get(model, model)


def is_reasoning(model: str) -> bool:
    return model.startswith(REASONING_PREFIXES)


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text_of(part) for part in content)
    if isinstance(content, dict):
        for key in ("text", "content", "refusal", "arguments", "output"):
            if key in content:
                return _text_of(content[key])
        if "function" in content:
            fn = content["function"]
            return str(fn.get("name", "")) + str(fn.get("arguments", ""))
        return ""
    return str(content)


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return _text_of(message)
    text = _text_of(message.get("content")) + str(message.get("name") or "")
    text += _text_of(message.get("arguments")) + _text_of(message.get("output"))
    for call in message.get("tool_calls") or ():
        text += _text_of(call)
    return text


@dataclass
class Prompt:
    """A request's input as the token rule sees it."""

    tokens: int
    canonical: str


def chat_prompt(messages: list[Any], tools: Any) -> Prompt:
    tools_text = json.dumps(tools, sort_keys=True) if tools else ""
    parts = [tools_text]
    tokens = 3 + count_tokens(tools_text)
    for message in messages:
        text = _message_text(message)
        role = message.get("role", "") if isinstance(message, dict) else "user"
        parts.append(f"{role}:{text}\n")
        tokens += 4 + count_tokens(text)
    return Prompt(tokens, "".join(parts))


@dataclass
class Output:
    """One reply: visible text, its token count, reasoning tokens and why it stopped."""

    text: str
    words: list[str]
    tokens: int
    reasoning: int
    capped: bool


def output_limit(req: Request, *keys: str) -> int | None:
    for key in keys:
        value = req.body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise HttpError(400, f"Invalid '{key}': integer below minimum value 1.", param=key)
            return value
    return None


def _natural_tokens(req: Request) -> int:
    header = req.headers.get("x-fake-output-tokens")
    if header is not None:
        try:
            return max(0, int(header))
        except ValueError:
            raise HttpError(400, f"x-fake-output-tokens must be an integer, got {header!r}") from None
    if req.settings.reply is not None:
        return count_tokens(req.settings.reply)
    return req.settings.output_tokens


def plan_output(req: Request, model: str, limit: int | None, seed: int = 0) -> Output:
    want = _natural_tokens(req)
    reasoning_model = is_reasoning(model)
    if reasoning_model and req.settings.reply is not None:
        want *= 2
    total = want if limit is None else min(want, limit)
    reasoning = total // 2 if reasoning_model else 0
    visible = total - reasoning
    reply = req.settings.reply
    words = make_words(visible, seed=seed) if reply is None else split_text(reply[: visible * 4])
    text = "".join(words)
    return Output(text, words, visible + reasoning, reasoning, capped=limit is not None and want > limit)


def split_text(text: str) -> list[str]:
    return [text[i : i + 4] for i in range(0, len(text), 4)]


def _usage_block(prompt_tokens: int, completion: int, cached: int, reasoning: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _include_usage(req: Request) -> bool:
    options = req.body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _choice_count(req: Request) -> int:
    n = req.body.get("n", 1)
    if n is None:
        return 1
    if not isinstance(n, int) or n < 1 or n > 128:
        raise HttpError(400, f"Invalid 'n': expected an integer from 1 to 128, got {n!r}.", param="n")
    return n


# ---------------------------------------------------------------- chat completions


@dataclass
class ToolCall:
    """The function call a chat reply makes."""

    id: str
    name: str
    arguments: str


def _tool_call(body: dict[str, Any]) -> ToolCall | None:
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"]
    choice = body.get("tool_choice")
    messages = body.get("messages") or []
    if not tools or choice == "none":
        return None
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "tool":
        return None
    tool = tools[0]
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        wanted = choice["function"].get("name")
        tool = next((t for t in tools if t.get("function", {}).get("name") == wanted), tool)
    fn = tool.get("function", {})
    arguments = json.dumps(fill_args(fn.get("parameters")))
    return ToolCall(new_id("call_")[:29], fn.get("name", "tool"), arguments)


def fill_args(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties") or {}
    samples = {"string": "x", "integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}
    return {name: samples.get(props.get(name, {}).get("type")) for name in schema.get("required") or ()}


def chat_completions(req: Request) -> JsonResponse | SseResponse:
    """``POST /v1/chat/completions``."""
    model = request_model(req)
    messages = req.body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise HttpError(400, "Invalid 'messages': expected a non-empty array.", param="messages")
    n = _choice_count(req)
    prompt = chat_prompt(messages, req.body.get("tools"))
    cached = req.cache.lookup_and_store(model, prompt.canonical, prompt.tokens)
    limit = output_limit(req, "max_completion_tokens", "max_tokens")
    tool = _tool_call(req.body)
    outputs = [plan_output(req, model, limit, seed=i) for i in range(n)]
    completion = sum(count_tokens(tool.name + tool.arguments) if tool else o.tokens for o in outputs)
    usage = _usage_block(prompt.tokens, completion, cached, 0 if tool else sum(o.reasoning for o in outputs))
    head = {
        "id": new_id("chatcmpl-"),
        "created": int(time.time()),
        "model": reported_model(req, model),
        "system_fingerprint": _FINGERPRINT,
        "service_tier": "default",
    }
    if req.wants_stream:
        include = _include_usage(req)
        return SseResponse(_chat_chunks(head, outputs, tool, usage if include else None, include), usage)
    choices = [_chat_choice(i, o, tool) for i, o in enumerate(outputs)]
    body = {**head, "object": "chat.completion", "choices": choices, "usage": usage}
    return JsonResponse(body, usage=usage)


def _finish(output: Output, tool: ToolCall | None) -> str:
    if tool is not None:
        return "tool_calls"
    return "length" if output.capped else "stop"


def _chat_choice(index: int, output: Output, tool: ToolCall | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    if tool is not None:
        fn = {"name": tool.name, "arguments": tool.arguments}
        message["tool_calls"] = [{"id": tool.id, "type": "function", "function": fn}]
    else:
        message["content"] = output.text
    return {"index": index, "message": message, "logprobs": None, "finish_reason": _finish(output, tool)}


def _chat_chunks(
    head: dict[str, Any],
    outputs: list[Output],
    tool: ToolCall | None,
    usage: dict[str, Any] | None,
    include_usage: bool,
) -> Iterator[SseEvent]:
    base = {**head, "object": "chat.completion.chunk"}
    if include_usage:
        base["usage"] = None

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> SseEvent:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return SseEvent(json.dumps({**base, "choices": [choice]}, separators=(",", ":")))

    for index, output in enumerate(outputs):
        if tool is not None:
            fn = {"name": tool.name, "arguments": ""}
            call = {"index": 0, "id": tool.id, "type": "function", "function": fn}
            yield chunk(index, {"role": "assistant", "content": None, "tool_calls": [call]})
            for piece in split_text(tool.arguments):
                yield chunk(index, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        else:
            yield chunk(index, {"role": "assistant", "content": "", "refusal": None})
            for word in output.words:
                yield chunk(index, {"content": word})
        yield chunk(index, {}, _finish(output, tool))
    if usage is not None:
        yield SseEvent(json.dumps({**base, "choices": [], "usage": usage}, separators=(",", ":")))
    yield SseEvent("[DONE]")


# ---------------------------------------------------------------- legacy completions


def completions(req: Request) -> JsonResponse | SseResponse:
    """``POST /v1/completions`` (legacy text completions)."""
    model = request_model(req)
    prompt = req.body.get("prompt")
    if prompt is None:
        raise HttpError(400, "Invalid 'prompt': this parameter is required.", param="prompt")
    prompt_text = _text_of(prompt) if not isinstance(prompt, list) else "".join(map(str, prompt))
    prompt_tokens = count_tokens(prompt_text)
    cached = req.cache.lookup_and_store(model, prompt_text, prompt_tokens)
    n = _choice_count(req)
    limit = output_limit(req, "max_tokens")
    if limit is None:
        limit = 16  # the legacy endpoint's documented default
    outputs = [plan_output(req, model, limit, seed=i) for i in range(n)]
    usage = _usage_block(prompt_tokens, sum(o.tokens for o in outputs), cached, 0)
    head = {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": reported_model(req, model),
        "system_fingerprint": _FINGERPRINT,
    }
    if req.wants_stream:
        include = _include_usage(req)
        return SseResponse(_completion_chunks(head, outputs, usage if include else None), usage)
    choices = [
        {"index": i, "text": o.text, "logprobs": None, "finish_reason": "length" if o.capped else "stop"}
        for i, o in enumerate(outputs)
    ]
    return JsonResponse({**head, "choices": choices, "usage": usage}, usage=usage)


def _completion_chunks(
    head: dict[str, Any], outputs: list[Output], usage: dict[str, Any] | None
) -> Iterator[SseEvent]:
    def chunk(index: int, text: str, finish: str | None) -> SseEvent:
        choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
        return SseEvent(json.dumps({**head, "choices": [choice], "usage": None}, separators=(",", ":")))

    for index, output in enumerate(outputs):
        for word in output.words:
            yield chunk(index, word, None)
        yield chunk(index, "", "length" if output.capped else "stop")
    if usage is not None:
        yield SseEvent(json.dumps({**head, "choices": [], "usage": usage}, separators=(",", ":")))
    yield SseEvent("[DONE]")


# ---------------------------------------------------------------- embeddings


def _embedding_inputs(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [value]
    if isinstance(value, list) and value:
        return value
    raise HttpError(400, "Invalid 'input': expected a string or a non-empty array.", param="input")


def _vector(index: int, text: Any, dims: int) -> list[float]:
    seed = sum(ord(c) for c in str(text)) + index
    return [((seed * 31 + i * 17) % 1000) / 1000.0 - 0.5 for i in range(dims)]


def embeddings(req: Request) -> JsonResponse:
    """``POST /v1/embeddings``: ``float`` or ``base64`` vectors, usage without completion tokens."""
    model = request_model(req)
    inputs = _embedding_inputs(req.body.get("input"))
    dims = req.body.get("dimensions") or EMBEDDING_DIMENSIONS.get(model, DEFAULT_EMBEDDING_DIMENSIONS)
    fmt = req.body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise HttpError(400, f"Invalid 'encoding_format': {fmt!r}.", param="encoding_format")
    tokens = sum(len(i) if isinstance(i, list) else count_tokens(str(i)) for i in inputs)
    data = []
    for index, item in enumerate(inputs):
        vector = _vector(index, item, int(dims))
        encoded: Any = vector
        if fmt == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    body = {"object": "list", "data": data, "model": reported_model(req, model), "usage": usage}
    return JsonResponse(body, usage=usage)
