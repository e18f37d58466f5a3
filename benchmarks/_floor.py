"""The floor: the least any OpenTelemetry instrumentation of a chat call can do through the SDK.

One CLIENT span per ``chat.completions.create`` with the GenAI attributes the semantic conventions
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
from typing import Any

import wrapt
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import SpanKind, TracerProvider

__all__ = ["enable_floor"]


def enable_floor(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
    """Wrap the openai SDK's sync ``Completions.create`` with the minimal span and metrics."""
    tracer = tracer_provider.get_tracer("floor")
    meter = meter_provider.get_meter("floor")
    token_usage = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs.get("stream"):
            return wrapped(*args, **kwargs)  # the floor measures plain calls only
        model = kwargs.get("model", "")
        base = {
            "gen_ai.provider.name": "openai",
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
            usage = response.usage
            span.set_attributes(
                {
                    "gen_ai.response.id": response.id,
                    "gen_ai.response.model": response.model,
                    "gen_ai.response.finish_reasons": [c.finish_reason for c in response.choices],
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                }
            )
        token_usage.record(usage.prompt_tokens, {**base, "gen_ai.token.type": "input"})
        token_usage.record(usage.completion_tokens, {**base, "gen_ai.token.type": "output"})
        duration.record(time.perf_counter() - start, base)
        return response

    wrapt.wrap_function_wrapper("openai.resources.chat.completions", "Completions.create", wrapper)
