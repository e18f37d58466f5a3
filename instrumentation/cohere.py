"""Cohere SDK instrumentation (``cohere`` v5+, the v2 API: ``cohere.ClientV2`` / ``AsyncClientV2``).

Wrapped: ``chat``, ``chat_stream`` and ``embed``, sync and async. Cost is from ``billed_units``
(what Cohere charges), not ``tokens`` (which adds the unbilled prompt template). Only parsing lives here.

``cohere.Client.__init__`` binds ``chat`` on each instance, so a client created BEFORE instrumentation
keeps an uninstrumented ``chat`` (``chat_stream`` and ``embed`` are still counted). Under
``opentelemetry-instrument`` instrumentation comes first; in code, call ``costwarden.configure()``
before creating clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.util.types import AttributeValue

from costwarden import semconv as sc
from costwarden._types import CallRequest
from costwarden.instrumentation._common import (
    as_plain,
    numeric_params,
    response_attributes,
    server_attributes,
)
from costwarden.instrumentation._core import RequestInfo, ResponseInfo
from costwarden.instrumentation._instrumentor import TargetInstrumentor
from costwarden.instrumentation._usage import (
    UsageMap,
    estimate_tokens,
    input_token_bound,
    read_path,
    usage_from,
)
from costwarden.instrumentation._wrap import WrapTarget

__all__ = ["CohereInstrumentor"]

_INSTRUMENTS = ("cohere >= 5.13",)

CHAT_USAGE = UsageMap(input_tokens="billed_units.input_tokens", output_tokens="billed_units.output_tokens")
EMBED_USAGE = UsageMap(input_tokens="billed_units.input_tokens", output_tokens=())

_PARAMS = {
    "temperature": sc.GEN_AI_REQUEST_TEMPERATURE,
    "p": sc.GEN_AI_REQUEST_TOP_P,
    "frequency_penalty": sc.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": sc.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "seed": sc.GEN_AI_REQUEST_SEED,
}


def _given(value: Any) -> Any:
    """None for absent values and the SDK's ``OMIT`` sentinel (``...``)."""
    return None if value is None or value is Ellipsis else value


def _base_url(instance: Any) -> str | None:
    wrapper = getattr(instance, "_client_wrapper", None) or read_path(instance, "_raw_client._client_wrapper")
    get = getattr(wrapper, "get_base_url", None)
    url = get() if callable(get) else None
    return url if isinstance(url, str) else None


def _finish(reason: Any) -> str | None:
    return str(getattr(reason, "value", reason)).lower() if reason else None


@dataclass(frozen=True, slots=True)
class _Operation:
    """``chat`` / ``chat_stream`` (messages) or ``embed`` (texts)."""

    name: str
    content_key: str
    usage: UsageMap
    stream: bool = False

    def parse_request(self, instance: Any, kwargs: dict[str, Any]) -> RequestInfo:
        model = str(_given(kwargs.get("model")) or "unknown")
        content = as_plain(_given(kwargs.get(self.content_key)))
        max_tokens = _given(kwargs.get("max_tokens"))
        attributes: dict[str, AttributeValue] = {
            sc.GEN_AI_PROVIDER_NAME: "cohere",
            sc.GEN_AI_OPERATION_NAME: self.name,
            sc.GEN_AI_REQUEST_MODEL: model,
        }
        attributes.update(server_attributes(_base_url(instance)))
        if isinstance(max_tokens, int):
            attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
        attributes.update(numeric_params({k: _given(v) for k, v in kwargs.items()}, _PARAMS))
        stop = _given(kwargs.get("stop_sequences"))
        if stop:
            attributes[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = list(stop)
        call = CallRequest(
            provider="cohere",
            operation=self.name,
            model=model,
            estimated_input_tokens=estimate_tokens(content),
            max_output_tokens=max_tokens if isinstance(max_tokens, int) else None,
            stream=self.stream,
            input_bound=lambda: (
                input_token_bound(content) + input_token_bound(as_plain(_given(kwargs.get("tools"))))
            ),
            content=content,
            messages=content if self.name == "chat" and isinstance(content, list) else None,
        )
        return RequestInfo(call=call, attributes=attributes, input_messages=content)

    def prepare(self, kwargs: dict[str, Any], request: RequestInfo) -> tuple[dict[str, Any], bool]:
        return kwargs, False  # usage comes on every response and on message-end

    def with_model(self, kwargs: dict[str, Any], model: str) -> dict[str, Any]:
        return {**kwargs, "model": model}

    def with_messages(self, kwargs: dict[str, Any], messages: list[Any]) -> dict[str, Any]:
        return {**kwargs, self.content_key: messages}

    def parse_response(self, response: Any) -> ResponseInfo:
        attributes = response_attributes(getattr(response, "id", None), None)
        reason = _finish(getattr(response, "finish_reason", None))
        if reason:
            attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]
        block = getattr(response, "usage", None) or getattr(response, "meta", None)
        info = ResponseInfo(attributes=attributes, usage=usage_from(block, self.usage))
        info.output_messages = getattr(response, "message", None)
        return info

    def new_stream_state(self, hide_injected: bool) -> _ChatStream:
        return _ChatStream()

    def unwrap_raw(self, result: Any) -> None:
        return None


class _ChatStream:
    """``chat_stream`` events: ``message-start`` (id), ``content-delta`` (text), ``message-end``
    (finish reason and usage)."""

    __slots__ = ("_attributes", "_chars", "_reason", "_usage")

    def __init__(self) -> None:
        self._attributes: dict[str, AttributeValue] = {}
        self._chars = 0
        self._reason: str | None = None
        self._usage: Any = None

    def process(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind == "content-delta":
            text = read_path(event, "delta.message.content.text")
            self._chars += len(text) if isinstance(text, str) else 0
        elif kind == "message-start":
            self._attributes = response_attributes(getattr(event, "id", None), None)
        elif kind == "message-end":
            self._usage = read_path(event, "delta.usage")
            self._reason = _finish(read_path(event, "delta.finish_reason"))
        return True

    def result(self) -> ResponseInfo:
        attributes = dict(self._attributes)
        if self._reason:
            attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [self._reason]
        usage = usage_from(self._usage, CHAT_USAGE)
        return ResponseInfo(attributes=attributes, usage=usage, output_tokens_estimate=(self._chars + 3) // 4)


CHAT = _Operation("chat", "messages", CHAT_USAGE)
CHAT_STREAM = _Operation("chat", "messages", CHAT_USAGE, stream=True)
EMBED = _Operation("embeddings", "texts", EMBED_USAGE)


def _targets() -> list[WrapTarget]:
    methods = {"chat": CHAT, "chat_stream": CHAT_STREAM, "embed": EMBED}
    return [
        WrapTarget("cohere.v2.client", cls, method, op)
        for cls in ("V2Client", "AsyncV2Client")
        for method, op in methods.items()
    ]


class CohereInstrumentor(TargetInstrumentor):
    """Instruments the cohere SDK's v2 client: chat, chat_stream and embed calls become priced,
    attributed GenAI spans, admitted by costwarden's budget processor before they are sent
    (``costwarden_cohere`` entry point)."""

    instruments = _INSTRUMENTS
    modules = ("cohere",)

    def targets(self) -> list[WrapTarget]:
        return _targets()
