"""The floor: the least any OpenTelemetry instrumentation of a chat call can do through the SDK.

One CLIENT span per ``chat.completions.create`` (openai) or ``messages.create`` (anthropic) with the
GenAI attributes the semantic conventions
require or recommend (provider, operation, request model, max tokens, server address and port;
response id and model, finish reasons, input and output tokens) and the two required client metrics
(``gen_ai.client.token.usage`` per token type, ``gen_ai.client.operation.duration``). No pricing,
no attribution, no budgets, no streams (passed through), no content, no error handling: a
lower bound for what costwarden and the peers do, measured on the same SDK providers, so that the
overhead table shows how much of each configuration's added time is the OpenTelemetry SDK's own.
Benchmark use only: it is not an instrumentation anyone should ship.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import wrapt
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import SpanKind, TracerProvider

__all__ = ["enable_floor"]


class _Sdk(NamedTuple):
    """Where an SDK's plain chat call is, and how to read its response."""

    provider: str
    module: str
    method: str
    read: Callable[[Any], tuple[dict[str, Any], int, int]]  # -> response attributes, input, output


def _read_openai(response: Any) -> tuple[dict[str, Any], int, int]:
    usage = response.usage
    finish = [c.finish_reason for c in response.choices]
    return _response(response, finish), usage.prompt_tokens, usage.completion_tokens


def _read_anthropic(response: Any) -> tuple[dict[str, Any], int, int]:
    usage = response.usage
    return _response(response, [response.stop_reason]), usage.input_tokens, usage.output_tokens


def _response(response: Any, finish_reasons: list[Any]) -> dict[str, Any]:
    return {
        "gen_ai.response.id": response.id,
        "gen_ai.response.model": response.model,
        "gen_ai.response.finish_reasons": finish_reasons,
    }


_SDKS = {
    "openai": _Sdk("openai", "openai.resources.chat.completions", "Completions.create", _read_openai),
    "anthropic": _Sdk(
        "anthropic", "anthropic.resources.messages.messages", "Messages.create", _read_anthropic
    ),
}


def enable_floor(tracer_provider: TracerProvider, meter_provider: MeterProvider, sdk: str = "openai") -> None:
    """Wrap the ``sdk`` SDK's sync chat call with the minimal span and metrics."""
    target = _SDKS[sdk]
    tracer = tracer_provider.get_tracer("floor")
    meter = meter_provider.get_meter("floor")
    token_usage = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs.get("stream"):
            return wrapped(*args, **kwargs)  # the floor measures plain calls only
        model = kwargs.get("model", "")
        base = {
            "gen_ai.provider.name": target.provider,
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
        }
        url = instance._client.base_url
        attributes = {**base, "server.address": url.host, "server.port": url.port}
        if "max_tokens" in kwargs:
            attributes["gen_ai.request.max_tokens"] = kwargs["max_tokens"]
        start = time.perf_counter()
        with tracer.start_as_current_span(
            f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            response = wrapped(*args, **kwargs)
            response_attributes, input_tokens, output_tokens = target.read(response)
            span.set_attributes(
                {
                    **response_attributes,
                    "gen_ai.usage.input_tokens": input_tokens,
                    "gen_ai.usage.output_tokens": output_tokens,
                }
            )
        token_usage.record(input_tokens, {**base, "gen_ai.token.type": "input"})
        token_usage.record(output_tokens, {**base, "gen_ai.token.type": "output"})
        duration.record(time.perf_counter() - start, base)
        return response

    wrapt.wrap_function_wrapper(target.module, target.method, wrapper)
