"""Anthropic SDK instrumentation (``anthropic``; ``Anthropic``, ``AsyncAnthropic``, and the SDK's
``AnthropicBedrock`` / ``AnthropicVertex`` clients, which go through the same ``Messages`` resource).

Wrapped: ``messages.create`` (streamed or not), ``messages.stream()`` (the SDK's stream helper sends
its request itself, not through ``create``), ``messages.parse``, and the same on ``beta.messages``;
sync and async. ``with_raw_response`` goes through ``create``. ``messages.count_tokens`` is not
wrapped: it generates nothing and costs nothing. Only parsing lives here.

Anthropic's ``input_tokens`` EXCLUDES the prompt-cache reads and writes reported beside it, while
costwarden's input tokens include them: input = input + cache_read + cache_creation. ``output_tokens``
already includes extended thinking (``output_tokens_details.thinking_tokens`` breaks it out). A stream
reports the input counts in ``message_start`` and the cumulative output in ``message_delta``.

Cache writes are billed by the cache's lifetime: ``cache_creation`` splits ``cache_creation_input_tokens``
into ``ephemeral_5m_input_tokens`` and ``ephemeral_1h_input_tokens`` (the dearer ``ttl: "1h"``). SDKs
older than the field keep it as an extra field of the usage model, which reads the same; a response
without it (older API versions) prices every write as a 5-minute one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from opentelemetry.util.types import AttributeValue

from costwarden import semconv as sc
from costwarden._types import CallRequest
from costwarden.instrumentation._common import (
    as_plain,
    given,
    materialize,
    numeric_params,
    raw_response_parser,
    response_attributes,
    response_in_error,
    server_attributes,
)
from costwarden.instrumentation._core import RequestInfo, ResponseInfo
from costwarden.instrumentation._instrumentor import TargetInstrumentor
from costwarden.instrumentation._usage import UsageMap, estimate_tokens, input_token_bound, usage_from
from costwarden.instrumentation._wrap import WrapTarget

__all__ = ["AnthropicInstrumentor"]

_INSTRUMENTS = ("anthropic >= 0.40",)

ANTHROPIC_USAGE = UsageMap(
    input_tokens=("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"),
    output_tokens="output_tokens",
    cache_read_tokens="cache_read_input_tokens",
    cache_write_tokens="cache_creation_input_tokens",
    cache_write_1h_tokens="cache_creation.ephemeral_1h_input_tokens",
    reasoning_tokens="output_tokens_details.thinking_tokens",
)
_USAGE_FIELDS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation",
    "output_tokens",
    "output_tokens_details",
)
_CLIENT_PROVIDERS = {
    "AnthropicBedrock": "aws.bedrock",
    "AsyncAnthropicBedrock": "aws.bedrock",
    "AnthropicVertex": "gcp.vertex_ai",
    "AsyncAnthropicVertex": "gcp.vertex_ai",
}
_REQUEST_PARAMS = {
    "temperature": sc.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": sc.GEN_AI_REQUEST_TOP_P,
}


def _client_attributes(instance: Any) -> tuple[str, dict[str, AttributeValue]]:
    client = getattr(instance, "_client", None)
    provider = _CLIENT_PROVIDERS.get(type(client).__name__, "anthropic")
    attributes: dict[str, AttributeValue] = {sc.GEN_AI_PROVIDER_NAME: provider}
    attributes.update(server_attributes(str(getattr(client, "base_url", "") or "")))
    return provider, attributes


@dataclass(frozen=True, slots=True)
class _Messages:
    """``messages.create`` / ``parse`` / ``stream`` (and ``beta.messages``'s): one Messages request."""

    stream_helper: bool = False  # stream(): always streamed, returns a stream manager
    async_stream_manager: bool = False  # an async client's stream(): admitted on ``async with``

    def parse_request(self, instance: Any, kwargs: dict[str, Any]) -> RequestInfo:
        provider, attributes = _client_attributes(instance)
        model = str(given(kwargs, "model") or "unknown")
        given_messages = given(kwargs, "messages")
        messages = materialize(given_messages)
        system = as_plain(given(kwargs, "system"))
        tools = as_plain(given(kwargs, "tools"))
        max_tokens = given(kwargs, "max_tokens")
        attributes[sc.GEN_AI_OPERATION_NAME] = "chat"
        attributes[sc.GEN_AI_REQUEST_MODEL] = model
        if isinstance(max_tokens, int):
            attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
        attributes.update(numeric_params(kwargs, _REQUEST_PARAMS))
        stop = given(kwargs, "stop_sequences")
        if stop:
            attributes[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = list(stop)
        plain = as_plain(messages) if isinstance(messages, list | tuple) else None
        call = CallRequest(
            provider=provider,
            operation="chat",
            model=model,
            estimated_input_tokens=estimate_tokens(plain) + estimate_tokens(system) + estimate_tokens(tools),
            max_output_tokens=max_tokens if isinstance(max_tokens, int) else None,
            stream=self.stream_helper or bool(given(kwargs, "stream")),
            input_bound=lambda: (
                input_token_bound(plain) + input_token_bound(system) + input_token_bound(tools)
            ),
            content=plain,
            messages=messages if isinstance(messages, list) else None,
        )
        read = messages if messages is not given_messages else None
        return RequestInfo(call=call, attributes=attributes, input_messages=plain, prompt_read=read)

    def prepare(self, kwargs: dict[str, Any], request: RequestInfo) -> tuple[dict[str, Any], bool]:
        if request.prompt_read is not None:  # the one-pass iterable read in parse_request
            kwargs = self.with_messages(kwargs, request.prompt_read)
        return kwargs, False  # Anthropic reports usage on every stream

    def with_model(self, kwargs: dict[str, Any], model: str) -> dict[str, Any]:
        return {**kwargs, "model": model}

    def with_messages(self, kwargs: dict[str, Any], messages: list[Any]) -> dict[str, Any]:
        return {**kwargs, "messages": messages}  # ``system`` is a separate parameter: never trimmed

    def parse_response(self, response: Any) -> ResponseInfo:
        attributes = response_attributes(getattr(response, "id", None), getattr(response, "model", None))
        reason = getattr(response, "stop_reason", None)
        if isinstance(reason, str):
            attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]
        info = ResponseInfo(
            attributes=attributes, usage=usage_from(getattr(response, "usage", None), ANTHROPIC_USAGE)
        )
        info.output_messages = getattr(response, "content", None)
        return info

    def new_stream_state(self, hide_injected: bool) -> _MessageEvents:
        return _MessageEvents()

    def unwrap_raw(self, result: Any) -> Any:
        return raw_response_parser(result)

    def response_in_error(self, exc: BaseException) -> tuple[bool, Any]:
        return response_in_error(exc)


_DELTA_TEXT = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}
"""The field of each content_block_delta type whose text the output estimate counts."""


class _MessageEvents:
    """A raw Messages stream: ``message_start`` carries the id, model and input counts,
    ``message_delta`` the stop reason and the cumulative output (later fields override earlier ones)."""

    __slots__ = ("_attributes", "_chars", "_delta_seen", "_reason", "_usage")

    def __init__(self) -> None:
        self._attributes: dict[str, AttributeValue] = {}
        self._usage: dict[str, Any] = {}
        self._reason: str | None = None
        self._delta_seen = False
        self._chars = 0

    def process(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind == "content_block_delta":
            delta = getattr(event, "delta", None)
            # By the delta's type: asking a pydantic model for a field it lacks raises inside (slow).
            field = _DELTA_TEXT.get(getattr(delta, "type", ""))
            value = getattr(delta, field, None) if field is not None else None
            if isinstance(value, str):
                self._chars += len(value)
        elif kind == "message_start":
            message = getattr(event, "message", None)
            self._attributes = response_attributes(
                getattr(message, "id", None), getattr(message, "model", None)
            )
            self._merge(getattr(message, "usage", None))
        elif kind == "message_delta":
            self._delta_seen = True
            self._reason = getattr(getattr(event, "delta", None), "stop_reason", None) or self._reason
            self._merge(getattr(event, "usage", None))
        return True

    def _merge(self, usage: Any) -> None:
        for field in _USAGE_FIELDS:
            value = getattr(usage, field, None)
            if value is not None:
                self._usage[field] = value

    def result(self) -> ResponseInfo:
        attributes = dict(self._attributes)
        if self._reason:
            attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [self._reason]
        estimate = (self._chars + 3) // 4
        usage = usage_from(self._usage or None, ANTHROPIC_USAGE)
        if usage is not None and not self._delta_seen:
            # Cut before message_delta: the input counts are the provider's, the output is estimated.
            usage = dataclasses.replace(
                usage, output_tokens=max(usage.output_tokens, estimate), estimated=True
            )
        return ResponseInfo(attributes=attributes, usage=usage, output_tokens_estimate=estimate)


CREATE = _Messages()
STREAM = _Messages(stream_helper=True)
ASYNC_STREAM = _Messages(stream_helper=True, async_stream_manager=True)


# The packages, not their ``messages`` submodules: in the oldest supported SDKs (0.40)
# ``anthropic.resources.messages`` is a module. Only the SDKs of the prompt-caching beta (0.40 among
# them) have ``beta.prompt_caching.messages``; the table skips what a version lacks.
_MESSAGES_MODULES = (
    "anthropic.resources.messages",
    "anthropic.resources.beta.messages",
    "anthropic.resources.beta.prompt_caching",
)


def _targets() -> list[WrapTarget]:
    targets = []
    for module in _MESSAGES_MODULES:
        targets += [
            WrapTarget(module, "Messages", "create", CREATE),
            WrapTarget(module, "Messages", "parse", CREATE),
            WrapTarget(module, "Messages", "stream", STREAM),
            WrapTarget(module, "AsyncMessages", "create", CREATE),
            WrapTarget(module, "AsyncMessages", "parse", CREATE),
            WrapTarget(module, "AsyncMessages", "stream", ASYNC_STREAM),
        ]
    return targets


class AnthropicInstrumentor(TargetInstrumentor):
    """Instruments the anthropic SDK: every Messages call becomes a priced, attributed GenAI span,
    admitted by costwarden's budget processor before it is sent (``costwarden_anthropic`` entry point;
    also installs the budget processor under ``opentelemetry-instrument``)."""

    instruments = _INSTRUMENTS
    modules = ("anthropic",)

    def targets(self) -> list[WrapTarget]:
        return _targets()
