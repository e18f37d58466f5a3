"""Google Gen AI SDK instrumentation (``google-genai``: ``from google import genai``), for the Gemini
API (``gcp.gemini``) and Vertex AI (``gcp.vertex_ai``, a client made with ``vertexai=True``).

Wrapped: ``client.models.generate_content``, ``generate_content_stream`` and ``embed_content``, and
the same on ``client.aio.models``; for generate, the private per-request methods beneath them (see
:func:`_per_request`), as one call may send several requests (automatic function calling). Only
parsing lives here.

Gemini reports ``candidatesTokenCount`` WITHOUT the thinking tokens (``thoughtsTokenCount`` is beside
it), while costwarden's output tokens include reasoning: output = candidates + thoughts, reasoning =
thoughts. ``promptTokenCount`` already includes ``cachedContentTokenCount`` (and tool-use prompt
tokens are input too).

google-genai before 1.8 has no fields for ``thoughtsTokenCount`` and ``toolUsePromptTokenCount`` and
drops them, but keeps ``totalTokenCount``, which includes them: with such an SDK the rest of the total
is counted as thinking (output, the dearer side of the two).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from opentelemetry.util.types import AttributeValue

from costwarden import semconv as sc
from costwarden._types import CallRequest, Usage
from costwarden.instrumentation._common import (
    as_plain,
    choice_count,
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

__all__ = ["GoogleGenAIInstrumentor"]

_INSTRUMENTS = ("google-genai >= 1.0",)

GEMINI_USAGE = UsageMap(
    input_tokens=("prompt_token_count", "tool_use_prompt_token_count"),
    output_tokens=("candidates_token_count", "thoughts_token_count"),
    cache_read_tokens="cached_content_token_count",
    reasoning_tokens="thoughts_token_count",
)
EMBED_USAGE = UsageMap(input_tokens="prompt_token_count", output_tokens=())

_CONFIG_PARAMS = {
    "temperature": sc.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": sc.GEN_AI_REQUEST_TOP_P,
    "frequency_penalty": sc.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": sc.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "seed": sc.GEN_AI_REQUEST_SEED,
}
_MODEL_PREFIXES = ("publishers/google/models/", "models/")


def _model_name(model: str) -> str:
    """``gemini-2.5-pro`` from ``models/gemini-2.5-pro`` or a Vertex resource name."""
    for prefix in _MODEL_PREFIXES:
        index = model.find(prefix)
        if index >= 0:
            return model[index + len(prefix) :]
    return model


def _generate_usage(block: Any) -> Usage | None:
    """The usage of a generate response, with the tokens an SDK before 1.8 drops (thinking, tool-use
    prompt) recovered from ``total_token_count`` and counted as thinking."""
    usage = usage_from(block, GEMINI_USAGE)
    if usage is None or hasattr(block, "thoughts_token_count"):
        return usage
    total = getattr(block, "total_token_count", None)
    rest = total - usage.input_tokens - usage.output_tokens if isinstance(total, int) else 0
    if rest <= 0:
        return usage
    return dataclasses.replace(
        usage, output_tokens=usage.output_tokens + rest, reasoning_tokens=usage.reasoning_tokens + rest
    )


def _client_attributes(instance: Any) -> tuple[str, dict[str, AttributeValue]]:
    api_client = getattr(instance, "_api_client", None)
    provider = "gcp.vertex_ai" if getattr(api_client, "vertexai", False) else "gcp.gemini"
    base_url = read_path(api_client, "_http_options.base_url")
    attributes: dict[str, AttributeValue] = {sc.GEN_AI_PROVIDER_NAME: provider}
    attributes.update(server_attributes(base_url if isinstance(base_url, str) else None))
    return provider, attributes


def _finish_reason(candidate: Any) -> str | None:
    reason = getattr(candidate, "finish_reason", None)
    if reason is None:
        return None
    return str(getattr(reason, "value", reason)).lower()


def _text_chars(response: Any) -> int:
    chars = 0
    for candidate in getattr(response, "candidates", None) or ():
        for part in read_path(candidate, "content.parts") or ():
            text = getattr(part, "text", None)
            if isinstance(text, str):
                chars += len(text)
    return chars


@dataclass(frozen=True, slots=True)
class _Operation:
    """How one ``Models`` method reads: generate (streamed or not) or embed."""

    name: str  # gen_ai.operation.name
    usage: UsageMap
    stream: bool = False

    def parse_request(self, instance: Any, kwargs: dict[str, Any]) -> RequestInfo:
        provider, attributes = _client_attributes(instance)
        model = _model_name(str(kwargs.get("model") or "unknown"))
        contents = kwargs.get("contents")
        config = kwargs.get("config")
        max_tokens = read_path(config, "max_output_tokens")
        attributes[sc.GEN_AI_OPERATION_NAME] = self.name
        attributes[sc.GEN_AI_REQUEST_MODEL] = model
        if isinstance(max_tokens, int):
            attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
        attributes.update(numeric_params(config, _CONFIG_PARAMS))
        stop = read_path(config, "stop_sequences")
        if stop:
            attributes[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = list(stop)
        choices = choice_count(read_path(config, "candidate_count"))
        if choices != 1:
            attributes[sc.GEN_AI_REQUEST_CHOICE_COUNT] = choices
        plain = as_plain(contents)
        estimate = estimate_tokens(plain) + estimate_tokens(as_plain(read_path(config, "system_instruction")))
        call = CallRequest(
            provider=provider,
            operation=self.name,
            model=model,
            estimated_input_tokens=estimate,
            max_output_tokens=max_tokens if isinstance(max_tokens, int) else None,
            stream=self.stream,
            input_bound=lambda: (
                input_token_bound(plain)
                + input_token_bound(as_plain(read_path(config, "system_instruction")))
                + input_token_bound(as_plain(read_path(config, "tools")))
            ),
            content=plain,
            messages=contents if self.name != "embeddings" and isinstance(contents, list) else None,
            choices=choices,
        )
        return RequestInfo(call=call, attributes=attributes, input_messages=plain)

    def prepare(self, kwargs: dict[str, Any], request: RequestInfo) -> tuple[dict[str, Any], bool]:
        return kwargs, False  # Gemini always reports usage, streamed or not

    def with_model(self, kwargs: dict[str, Any], model: str) -> dict[str, Any]:
        return {**kwargs, "model": model}

    def with_messages(self, kwargs: dict[str, Any], messages: list[Any]) -> dict[str, Any]:
        return {**kwargs, "contents": messages}

    def parse_response(self, response: Any) -> ResponseInfo:
        attributes = response_attributes(
            getattr(response, "response_id", None), getattr(response, "model_version", None)
        )
        candidates = getattr(response, "candidates", None) or ()
        reasons = [r for c in candidates if (r := _finish_reason(c))]
        if reasons:
            attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
        info = ResponseInfo(
            attributes=attributes, usage=self.read_usage(getattr(response, "usage_metadata", None))
        )
        if candidates:
            info.output_messages = [getattr(c, "content", None) for c in candidates]
        return info

    def read_usage(self, block: Any) -> Usage | None:
        """The call's usage from a ``usage_metadata`` block."""
        return _generate_usage(block) if self.usage is GEMINI_USAGE else usage_from(block, self.usage)

    def new_stream_state(self, hide_injected: bool) -> _GenerateStream:
        return _GenerateStream(self)

    def unwrap_raw(self, result: Any) -> None:
        return None


class _GenerateStream:
    """``generate_content_stream``: each chunk is a partial response; the last ones carry the usage."""

    __slots__ = ("_chars", "_last", "_op", "_reasons", "_usage")

    def __init__(self, op: _Operation) -> None:
        self._op = op
        self._last: Any = None
        self._usage: Any = None
        self._reasons: list[str] = []
        self._chars = 0

    def process(self, chunk: Any) -> bool:
        self._last = chunk
        self._chars += _text_chars(chunk)
        usage = getattr(chunk, "usage_metadata", None)
        if usage is not None:
            self._usage = usage
        self._reasons.extend(r for c in getattr(chunk, "candidates", None) or () if (r := _finish_reason(c)))
        return True

    def result(self) -> ResponseInfo:
        last = self._last
        attributes = response_attributes(
            getattr(last, "response_id", None), getattr(last, "model_version", None)
        )
        if self._reasons:
            attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = self._reasons
        usage = self._op.read_usage(self._usage)
        if usage is not None and usage.output_tokens == 0 and self._chars:
            usage = None  # only the prompt count arrived (a stream cut before its last chunk): estimate
        return ResponseInfo(attributes=attributes, usage=usage, output_tokens_estimate=(self._chars + 3) // 4)


GENERATE = _Operation("generate_content", GEMINI_USAGE)
GENERATE_STREAM = _Operation("generate_content", GEMINI_USAGE, stream=True)
EMBED = _Operation("embeddings", EMBED_USAGE)


def _per_request(cls: str, public: str) -> str:
    """The method that sends ONE generate request, ``_generate_content[_stream]``, where the SDK has it
    (1.0 and later): the public method loops over it, one request per automatic function calling
    round (and per continuation hop), so wrapping it admits, counts and can stop each request. The
    public method is then left unwrapped, so no request is counted twice."""
    try:
        from google.genai import models
    except ImportError:
        return public
    private = f"_{public}"
    return private if callable(getattr(getattr(models, cls, None), private, None)) else public


def _targets() -> list[WrapTarget]:
    methods = {
        "generate_content": GENERATE,
        "generate_content_stream": GENERATE_STREAM,
    }
    targets = [
        WrapTarget("google.genai.models", cls, _per_request(cls, method), op)
        for cls in ("Models", "AsyncModels")
        for method, op in methods.items()
    ]
    targets += [
        WrapTarget("google.genai.models", cls, "embed_content", EMBED) for cls in ("Models", "AsyncModels")
    ]
    return targets


class GoogleGenAIInstrumentor(TargetInstrumentor):
    """Instruments the google-genai SDK: every Gemini call becomes a priced, attributed GenAI span,
    admitted by costwarden's budget processor before it is sent (``costwarden_google_genai`` entry
    point; also installs the budget processor under ``opentelemetry-instrument``)."""

    instruments = _INSTRUMENTS
    modules = ("google.genai",)

    def targets(self) -> list[WrapTarget]:
        return _targets()
