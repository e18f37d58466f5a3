"""OpenAI SDK instrumentation (``openai`` 1.x, 2.x and 3.x; ``OpenAI``, ``AsyncOpenAI``, ``AzureOpenAI``
and any OpenAI-compatible ``base_url``).

Only parsing lives here: how each wrapped method's requests and responses read. Spans, budgets, cost
and streams are handled by the shared pieces in this package.

The SDK types ``messages`` and ``input`` as any ``Iterable``: one given as an iterator or generator can
be read once only. It is read into a list before anything looks at it (estimate, strict bound,
fingerprint, trim) and that list is what the SDK sends, through the path a trimmed context takes
(``with_messages``). Should the app's iterator raise, the SDK is given what was read and then the same
error, so it fails as it would without costwarden.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.util.types import AttributeValue

from costwarden import semconv as sc
from costwarden._types import CallRequest
from costwarden.instrumentation._common import (
    choice_count,
    materialize,
    raw_response_parser,
    response_in_error,
)
from costwarden.instrumentation._common import given as _given
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

__all__ = ["OpenAIInstrumentor", "provider_for_host"]

_INSTRUMENTS = ("openai >= 1.40",)

CHAT_USAGE = UsageMap(
    input_tokens="prompt_tokens",
    output_tokens="completion_tokens",
    cache_read_tokens="prompt_tokens_details.cached_tokens",
    reasoning_tokens="completion_tokens_details.reasoning_tokens",
)
RESPONSES_USAGE = UsageMap(
    input_tokens="input_tokens",
    output_tokens="output_tokens",
    cache_read_tokens="input_tokens_details.cached_tokens",
    reasoning_tokens="output_tokens_details.reasoning_tokens",
)
EMBEDDINGS_USAGE = UsageMap(input_tokens="prompt_tokens", output_tokens=())

# gen_ai.provider.name for OpenAI-compatible hosts (semantic-convention values where they exist).
_HOST_PROVIDERS = {
    "api.openai.com": "openai",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.together.xyz": "together",
    "api.together.ai": "together",
    "openrouter.ai": "openrouter",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "api.fireworks.ai": "fireworks",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "api.cerebras.ai": "cerebras",
}
_HOST_SUFFIXES = {".openai.azure.com": "azure.ai.openai", ".services.ai.azure.com": "azure.ai.openai"}

_REQUEST_PARAMS = {
    "temperature": sc.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": sc.GEN_AI_REQUEST_TOP_P,
    "frequency_penalty": sc.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": sc.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "seed": sc.GEN_AI_REQUEST_SEED,
}


def provider_for_host(host: str) -> str:
    """The ``gen_ai.provider.name`` for an OpenAI-compatible API host; ``openai`` when unknown."""
    host = host.lower()
    if host in _HOST_PROVIDERS:
        return _HOST_PROVIDERS[host]
    for suffix, provider in _HOST_SUFFIXES.items():
        if host.endswith(suffix):
            return provider
    return "openai"


@lru_cache(maxsize=256)
def _server(base_url: str, is_azure: bool) -> tuple[str, str, int | None]:
    """(provider, host, port) for a client's base URL; cached, as it is the same for every call."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None)
    return ("azure.ai.openai" if is_azure else provider_for_host(host)), host, port


def _client_attributes(instance: Any) -> tuple[str, dict[str, AttributeValue]]:
    client = getattr(instance, "_client", None)
    base_url = str(getattr(client, "base_url", "") or "")
    is_azure = type(client).__name__ in ("AzureOpenAI", "AsyncAzureOpenAI")
    provider, host, port = _server(base_url, is_azure)
    attributes: dict[str, AttributeValue] = {sc.GEN_AI_PROVIDER_NAME: provider}
    if host:
        attributes[sc.SERVER_ADDRESS] = host
    if port:
        attributes[sc.SERVER_PORT] = port
    return provider, attributes


@dataclass(frozen=True, slots=True)
class _Operation:
    """How one family of OpenAI endpoints reads: which keyword holds the prompt, the output limit,
    the usage block, and how stream chunks look."""

    name: str  # gen_ai.operation.name
    content_key: str  # the request's prompt: messages / input / prompt
    max_tokens_keys: tuple[str, ...]
    usage: UsageMap
    stream_kind: str | None  # "chat" | "completion" | "responses" | None
    extra_content_key: str | None = None  # responses' instructions

    def parse_request(self, instance: Any, kwargs: dict[str, Any]) -> RequestInfo:
        provider, attributes = _client_attributes(instance)
        model = str(_given(kwargs, "model") or "unknown")
        given_content = _given(kwargs, self.content_key)
        content = materialize(given_content)
        tools = _given(kwargs, "tools")
        max_tokens = next((v for k in self.max_tokens_keys if (v := _given(kwargs, k)) is not None), None)
        attributes[sc.GEN_AI_OPERATION_NAME] = self.name
        attributes[sc.GEN_AI_REQUEST_MODEL] = model
        if max_tokens is not None:
            attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] = int(max_tokens)
        for key, attribute in _REQUEST_PARAMS.items():
            value = _given(kwargs, key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attributes[attribute] = value
        stop = _given(kwargs, "stop")
        if stop is not None:
            attributes[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = [stop] if isinstance(stop, str) else list(stop)
        choices = choice_count(_given(kwargs, "n"))
        if choices != 1:
            attributes[sc.GEN_AI_REQUEST_CHOICE_COUNT] = choices
        extra = _given(kwargs, self.extra_content_key) if self.extra_content_key else None
        estimate = estimate_tokens(content) + estimate_tokens(extra)
        if isinstance(content, list) and content and isinstance(content[0], int):
            estimate = len(content)  # embeddings or completions given token ids
        call = CallRequest(
            provider=provider,
            operation=self.name,
            model=model,
            estimated_input_tokens=estimate,
            max_output_tokens=int(max_tokens) if max_tokens is not None else None,
            stream=bool(_given(kwargs, "stream")),
            input_bound=lambda: (
                input_token_bound(content) + input_token_bound(extra) + input_token_bound(tools)
            ),
            content=content,
            messages=content if self.name == "chat" and self.content_key == "messages" else None,
            choices=max(choices, choice_count(_given(kwargs, "best_of"))),  # best_of: all are billed
        )
        read = content if content is not given_content else None
        return RequestInfo(call=call, attributes=attributes, input_messages=content, prompt_read=read)

    def prepare(self, kwargs: dict[str, Any], request: RequestInfo) -> tuple[dict[str, Any], bool]:
        if request.prompt_read is not None:  # the one-pass iterable read in parse_request
            kwargs = self.with_messages(kwargs, request.prompt_read)
        if not request.call.stream or self.stream_kind not in ("chat", "completion"):
            return kwargs, False
        if _raw_body_for_app(kwargs):
            return kwargs, False  # the app reads the SSE lines itself: an injected chunk could not be hidden
        options = _given(kwargs, "stream_options") or {}
        extra_body = _given(kwargs, "extra_body")
        if isinstance(extra_body, Mapping) and isinstance(extra_body.get("stream_options"), Mapping):
            # The SDK sends extra_body over the keyword arguments: the app's stream_options are there.
            options = extra_body["stream_options"]
            if "include_usage" in options:
                return kwargs, False
            stream_options = {**options, "include_usage": True}
            return {**kwargs, "extra_body": {**extra_body, "stream_options": stream_options}}, True
        if "include_usage" in options:
            return kwargs, False  # the app chose; an explicit False is respected (usage is then estimated)
        return {**kwargs, "stream_options": {**options, "include_usage": True}}, True

    def with_model(self, kwargs: dict[str, Any], model: str) -> dict[str, Any]:
        return {**kwargs, "model": model}

    def with_messages(self, kwargs: dict[str, Any], messages: list[Any]) -> dict[str, Any]:
        return {**kwargs, self.content_key: messages}

    def parse_response(self, response: Any) -> ResponseInfo:
        info = ResponseInfo(attributes=_response_attributes(response))
        info.usage = usage_from(getattr(response, "usage", None), self.usage)
        if self.stream_kind == "responses":
            reason = _responses_finish_reason(response)
            if reason:
                info.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]
            info.output_messages = getattr(response, "output", None)
        elif self.stream_kind is not None:
            choices = getattr(response, "choices", None) or []
            reasons = [r for c in choices if (r := getattr(c, "finish_reason", None))]
            if reasons:
                info.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
            info.output_messages = [getattr(c, "message", None) or getattr(c, "text", None) for c in choices]
        return info

    def new_stream_state(self, hide_injected: bool) -> Any:
        if self.stream_kind == "responses":
            return _ResponsesStream(self)
        return _ChunkStream(self, hide_injected)

    def unwrap_raw(self, result: Any) -> Any:
        return raw_response_parser(result)

    def response_in_error(self, exc: BaseException) -> tuple[bool, Any]:
        return response_in_error(exc)


def _raw_body_for_app(kwargs: Mapping[str, Any]) -> bool:
    """Whether the call comes through ``with_streaming_response``, whose body the app may read as raw
    bytes or lines rather than parse (the SDK marks it with this header)."""
    headers = _given(kwargs, "extra_headers")
    return isinstance(headers, Mapping) and headers.get("X-Stainless-Raw-Response") == "stream"


def _response_attributes(response: Any) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {}
    response_id = getattr(response, "id", None)
    if isinstance(response_id, str):
        attributes[sc.GEN_AI_RESPONSE_ID] = response_id
    model = getattr(response, "model", None)
    if isinstance(model, str):
        attributes[sc.GEN_AI_RESPONSE_MODEL] = model
    return attributes


def _responses_finish_reason(response: Any) -> str | None:
    status = getattr(response, "status", None)
    if status == "incomplete":
        return read_path(response, "incomplete_details.reason") or "incomplete"
    return status if isinstance(status, str) else None


class _ChunkStream:
    """Chat and legacy completion streams: chunks with ``choices`` and, last, an optional usage chunk."""

    __slots__ = ("_attributes", "_chars", "_hide", "_op", "_reasons", "_usage")

    def __init__(self, op: _Operation, hide_injected: bool) -> None:
        self._op = op
        self._hide = hide_injected
        self._attributes: dict[str, AttributeValue] = {}
        self._usage: Any = None
        self._chars = 0
        self._reasons: list[str] = []

    def process(self, chunk: Any) -> bool:
        if not self._attributes:
            self._attributes = _response_attributes(chunk)
        choices = getattr(chunk, "choices", None) or ()
        for choice in choices:
            delta = getattr(choice, "delta", None)
            text = getattr(delta, "content", None) if delta is not None else getattr(choice, "text", None)
            if isinstance(text, str):
                self._chars += len(text)
            for tool_call in (getattr(delta, "tool_calls", None) or ()) if delta is not None else ():
                self._chars += len(read_path(tool_call, "function.arguments") or "")
            reason = getattr(choice, "finish_reason", None)
            if reason:
                self._reasons.append(reason)
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self._usage = usage
            if self._hide and not choices:
                return False  # the usage-only chunk costwarden asked for; the app did not
        return True

    def result(self) -> ResponseInfo:
        attributes = dict(self._attributes)
        if self._reasons:
            attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = self._reasons
        return ResponseInfo(
            attributes=attributes,
            usage=usage_from(self._usage, self._op.usage),
            output_tokens_estimate=(self._chars + 3) // 4,
        )


_RESPONSE_DONE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class _ResponsesStream:
    """Responses API streams: typed events; the final one carries the whole response with usage."""

    __slots__ = ("_chars", "_final", "_first", "_op")

    def __init__(self, op: _Operation) -> None:
        self._op = op
        self._first: Any = None
        self._final: Any = None
        self._chars = 0

    def process(self, event: Any) -> bool:
        kind = getattr(event, "type", "")
        if kind.endswith(".delta"):
            delta = getattr(event, "delta", None)
            if isinstance(delta, str):
                self._chars += len(delta)
        elif kind == "response.created":
            self._first = getattr(event, "response", None)
        elif kind in _RESPONSE_DONE_EVENTS:
            self._final = getattr(event, "response", None)
        return True

    def result(self) -> ResponseInfo:
        if self._final is not None:
            info = self._op.parse_response(self._final)
        else:
            info = ResponseInfo(
                attributes=_response_attributes(self._first) if self._first is not None else {}
            )
        info.output_tokens_estimate = (self._chars + 3) // 4
        info.output_messages = None
        return info


CHAT = _Operation("chat", "messages", ("max_completion_tokens", "max_tokens"), CHAT_USAGE, "chat")
RESPONSES = _Operation(
    "chat", "input", ("max_output_tokens",), RESPONSES_USAGE, "responses", extra_content_key="instructions"
)
EMBEDDINGS = _Operation("embeddings", "input", (), EMBEDDINGS_USAGE, None)
COMPLETIONS = _Operation("text_completion", "prompt", ("max_tokens",), CHAT_USAGE, "completion")


def _targets() -> list[WrapTarget]:
    table = [
        ("openai.resources.chat.completions", "Completions", ("create", "parse"), CHAT),
        ("openai.resources.beta.chat.completions", "Completions", ("parse",), CHAT),
        ("openai.resources.responses", "Responses", ("create", "parse"), RESPONSES),
        ("openai.resources.embeddings", "Embeddings", ("create",), EMBEDDINGS),
        ("openai.resources.completions", "Completions", ("create",), COMPLETIONS),
    ]
    return [
        WrapTarget(module, prefix + cls, method, op)
        for module, cls, methods, op in table
        for prefix in ("", "Async")
        for method in methods
    ]


class OpenAIInstrumentor(TargetInstrumentor):
    """Instruments the openai SDK: every call becomes a priced, attributed GenAI span, admitted by
    costwarden's budget processor before it is sent.

    Under ``opentelemetry-instrument`` this is loaded through the ``costwarden_openai`` entry point and
    also installs costwarden's budget processor (see :func:`costwarden.configure`)."""

    instruments = _INSTRUMENTS
    modules = ("openai",)

    def targets(self) -> list[WrapTarget]:
        return _targets()
