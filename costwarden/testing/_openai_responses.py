"""OpenAI's Responses API (``POST /v1/responses``) for the fake provider, JSON and the real SSE sequence.

Token rules are those of ``_openai``. ``instructions`` count as a first system message and a string
``input`` as one user message. A reply capped by ``max_output_tokens`` has status ``incomplete`` with
``incomplete_details.reason = "max_output_tokens"`` and its stream ends with ``response.incomplete``;
otherwise ``completed`` / ``response.completed``. Reasoning models put a ``reasoning`` item before the
message. Function tools (``{"type": "function", "name": ...}``) are called as in chat: unless
``tool_choice`` is ``"none"`` or the last input item is a ``function_call_output``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from costwarden.testing._openai import (
    Output,
    ToolCall,
    chat_prompt,
    fill_args,
    is_reasoning,
    new_id,
    output_limit,
    plan_output,
    reported_model,
    request_model,
    split_text,
)
from costwarden.testing._server import HttpError, JsonResponse, Request, SseEvent, SseResponse
from costwarden.testing._tokens import count_tokens

__all__ = ["responses"]


def _input_messages(body: dict[str, Any]) -> list[Any]:
    value = body.get("input")
    if value is None:
        raise HttpError(400, "Missing required parameter: 'input'.", param="input")
    items = [{"role": "user", "content": value}] if isinstance(value, str) else list(value)
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        items.insert(0, {"role": "system", "content": instructions})
    return items


def _function_call(body: dict[str, Any], items: list[Any]) -> ToolCall | None:
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    if items and isinstance(items[-1], dict) and items[-1].get("type") == "function_call_output":
        return None
    tool = tools[0]
    if isinstance(choice, dict) and choice.get("name"):
        tool = next((t for t in tools if t.get("name") == choice["name"]), tool)
    name = str(tool.get("name", "tool"))
    return ToolCall(new_id("call_")[:29], name, json.dumps(fill_args(tool.get("parameters"))))


@dataclass
class _Reply:
    """Everything the JSON body and the event stream are built from."""

    base: dict[str, Any]
    output: Output
    tool: ToolCall | None
    reasoning_model: bool
    usage: dict[str, Any]
    message_id: str
    reasoning_id: str
    call_item_id: str

    @property
    def status(self) -> str:
        return "incomplete" if self.output.capped and self.tool is None else "completed"


def responses(req: Request) -> JsonResponse | SseResponse:
    """``POST /v1/responses``."""
    model = request_model(req)
    items = _input_messages(req.body)
    prompt = chat_prompt(items, req.body.get("tools"))
    cached = req.cache.lookup_and_store(model, prompt.canonical, prompt.tokens)
    output = plan_output(req, model, output_limit(req, "max_output_tokens"))
    tool = _function_call(req.body, items)
    produced = count_tokens(tool.name + tool.arguments) + output.reasoning if tool else output.tokens
    usage = {
        "input_tokens": prompt.tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": produced,
        "output_tokens_details": {"reasoning_tokens": output.reasoning},
        "total_tokens": prompt.tokens + produced,
    }
    reply = _Reply(
        base=_base(req, model),
        output=output,
        tool=tool,
        reasoning_model=is_reasoning(model),
        usage=usage,
        message_id=new_id("msg_"),
        reasoning_id=new_id("rs_"),
        call_item_id=new_id("fc_"),
    )
    if req.wants_stream:
        return SseResponse(_events(reply), usage)
    return JsonResponse(_final(reply), usage=usage)


def _base(req: Request, model: str) -> dict[str, Any]:
    body = req.body
    return {
        "id": new_id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": reported_model(req, model),
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _reasoning_item(reply: _Reply) -> dict[str, Any]:
    return {"id": reply.reasoning_id, "type": "reasoning", "summary": []}


def _message_item(reply: _Reply, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": reply.message_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _call_item(reply: _Reply, status: str, arguments: str) -> dict[str, Any]:
    assert reply.tool is not None
    return {
        "id": reply.call_item_id,
        "type": "function_call",
        "status": status,
        "call_id": reply.tool.id,
        "name": reply.tool.name,
        "arguments": arguments,
    }


def _final_items(reply: _Reply) -> list[dict[str, Any]]:
    items = [_reasoning_item(reply)] if reply.reasoning_model else []
    if reply.tool is not None:
        items.append(_call_item(reply, "completed", reply.tool.arguments))
    else:
        items.append(_message_item(reply, reply.status, [_text_part(reply.output.text)]))
    return items


def _final(reply: _Reply) -> dict[str, Any]:
    body = {**reply.base, "status": reply.status, "output": _final_items(reply), "usage": reply.usage}
    body["completed_at"] = int(time.time())
    if reply.status == "incomplete":
        body["incomplete_details"] = {"reason": "max_output_tokens"}
    return body


def _events(reply: _Reply) -> Iterator[SseEvent]:
    seq = 0

    def event(kind: str, **fields: Any) -> SseEvent:
        nonlocal seq
        data = {"type": kind, "sequence_number": seq, **fields}
        seq += 1
        return SseEvent(json.dumps(data, separators=(",", ":")), kind)

    pending = {**reply.base, "status": "in_progress"}
    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    index = 0
    if reply.reasoning_model:
        yield event("response.output_item.added", output_index=0, item=_reasoning_item(reply))
        yield event("response.output_item.done", output_index=0, item=_reasoning_item(reply))
        index = 1
    item_events = _call_events if reply.tool is not None else _message_events
    for kind, fields in item_events(reply, index):
        yield event(kind, **fields)
    final = _final(reply)
    yield event(
        "response.completed" if reply.status == "completed" else "response.incomplete", response=final
    )


def _message_events(reply: _Reply, index: int) -> Iterator[tuple[str, dict[str, Any]]]:
    where = {"item_id": reply.message_id, "output_index": index, "content_index": 0}
    yield (
        "response.output_item.added",
        {"output_index": index, "item": _message_item(reply, "in_progress", [])},
    )
    yield "response.content_part.added", {**where, "part": _text_part("")}
    for word in reply.output.words:
        yield "response.output_text.delta", {**where, "delta": word, "logprobs": []}
    text = reply.output.text
    yield "response.output_text.done", {**where, "text": text, "logprobs": []}
    yield "response.content_part.done", {**where, "part": _text_part(text)}
    done = _message_item(reply, reply.status, [_text_part(text)])
    yield "response.output_item.done", {"output_index": index, "item": done}


def _call_events(reply: _Reply, index: int) -> Iterator[tuple[str, dict[str, Any]]]:
    assert reply.tool is not None
    where = {"item_id": reply.call_item_id, "output_index": index}
    yield "response.output_item.added", {"output_index": index, "item": _call_item(reply, "in_progress", "")}
    for piece in split_text(reply.tool.arguments):
        yield "response.function_call_arguments.delta", {**where, "delta": piece}
    arguments = reply.tool.arguments
    yield "response.function_call_arguments.done", {**where, "name": reply.tool.name, "arguments": arguments}
    done = _call_item(reply, "completed", arguments)
    yield "response.output_item.done", {"output_index": index, "item": done}
