"""The shared handler every instrumented LLM call goes through, whatever the SDK.

An SDK module only parses: it describes each wrapped method as an :class:`Operation` that turns
keyword arguments into a :class:`RequestInfo` and a response (or stream chunks) into a
:class:`ResponseInfo`. :class:`LLMCall` does the rest, the same way for every provider: it starts the
span with the request attributes and attribution, asks the budget processor to admit the call and
applies its answer, then records usage and cost before ending the span exactly once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from costwarden import semconv as sc
from costwarden._attribution import attribution_attributes
from costwarden._errors import BudgetExceeded
from costwarden._state import get_processor
from costwarden._types import NO_OUTPUT_OPERATIONS, Admission, CallRequest, Usage
from costwarden.instrumentation._safety import best_effort
from costwarden.pricing import get_price_book

__all__ = [
    "LLMCall",
    "Operation",
    "RequestInfo",
    "ResponseInfo",
    "StreamState",
    "capture_content_enabled",
]

# Set while an instrumented call runs, so a wrapped method that calls another wrapped method (an SDK
# helper that calls create(), a framework that wraps an SDK) makes one span, not two.
_IN_LLM_CALL = otel_context.create_key("costwarden-in-llm-call")

_CAPTURE_VALUES = {"true", "1", "yes", "span_only", "span_and_event"}


def capture_content_enabled() -> bool:
    """Whether prompts and completions may be recorded (off unless the user says so)."""
    value = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
    return value.strip().lower() in _CAPTURE_VALUES


@dataclass(slots=True)
class RequestInfo:
    """A request as an SDK module reads it: span attributes and what admission needs."""

    call: CallRequest
    attributes: dict[str, AttributeValue]
    input_messages: Any = None
    """The prompt, recorded only when content capture is on."""
    prompt_read: Any = None
    """A prompt the app gave as a one-pass iterable (an iterator, a generator), read by ``parse_request``
    into what the SDK must send in its place (see ``_common.materialize``); None otherwise."""


@dataclass(slots=True)
class ResponseInfo:
    """A response (or what a stream delivered) as an SDK module reads it."""

    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    usage: Usage | None = None
    output_tokens_estimate: int = 0
    """Tokens of output seen, for a stream that ended before its usage block."""
    output_messages: Any = None
    billed: bool = False
    """A response arrived (so the call was billed) even if no usage could be read from it: the usage
    is then estimated rather than left out."""


class StreamState(Protocol):
    """Accumulates one stream's chunks."""

    def process(self, chunk: Any) -> bool:
        """Take one chunk; return False to hide it from the app (an injected usage-only chunk)."""
        ...

    def result(self) -> ResponseInfo:
        """What arrived so far."""
        ...


class Operation(Protocol):
    """How one wrapped SDK method reads its requests and responses."""

    def parse_request(self, instance: Any, kwargs: dict[str, Any]) -> RequestInfo: ...

    def prepare(self, kwargs: dict[str, Any], request: RequestInfo) -> tuple[dict[str, Any], bool]:
        """Adjust the request before it is sent (e.g. ask for usage on a stream). Returns the kwargs to
        send and whether chunks added by that adjustment must be hidden from the app."""
        ...

    def with_model(self, kwargs: dict[str, Any], model: str) -> dict[str, Any]: ...

    def with_messages(self, kwargs: dict[str, Any], messages: list[Any]) -> dict[str, Any]: ...

    def parse_response(self, response: Any) -> ResponseInfo: ...

    def new_stream_state(self, hide_injected: bool) -> StreamState: ...

    def unwrap_raw(self, result: Any) -> Callable[[], Any] | None:
        """For a raw-response wrapper (``with_raw_response``), a function that returns the parsed
        object inside it; None when ``result`` is the parsed object itself."""
        ...


class LLMCall:
    """One instrumented call: its span, its request, and the guarantee that the span ends once."""

    __slots__ = ("_ended", "admission", "capture_content", "hide_injected", "op", "request", "span")

    def __init__(
        self, span: trace.Span, op: Operation, request: RequestInfo, capture_content: bool = False
    ) -> None:
        self.span = span
        self.op = op
        self.request = request
        self.capture_content = capture_content
        """Whether prompts and completions are recorded (read once per call)."""
        self.hide_injected = False
        self.admission: Admission | None = None
        """The budget processor's answer; the call's usage and cost are reported back on it."""
        self._ended = False

    # -- start ---------------------------------------------------------------------------------
    @classmethod
    def begin(
        cls, tracer: trace.Tracer, op: Operation, instance: Any, kwargs: dict[str, Any]
    ) -> LLMCall | None:
        """Start the span for a call, or return None when this call is not to be instrumented
        (instrumentation suppressed, already inside an instrumented call, or a costwarden bug)."""
        if not is_instrumentation_enabled() or otel_context.get_value(_IN_LLM_CALL):
            return None
        with best_effort("reading the request"):
            request = op.parse_request(instance, kwargs)
            attributes = request.attributes
            attributes.update(attribution_attributes())
            capture = capture_content_enabled()
            if capture and request.input_messages is not None:
                attributes[sc.GEN_AI_INPUT_MESSAGES] = _to_json(request.input_messages)
            name = f"{request.call.operation} {request.call.model}"
            span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
            return cls(span, op, request, capture)
        return None

    def prepare(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        with best_effort("preparing the request"):
            kwargs, self.hide_injected = self.op.prepare(kwargs, self.request)
        return kwargs

    # -- admission -----------------------------------------------------------------------------
    def admit(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Ask the budget processor; apply a downgrade or trimmed context. A veto ends the span and
        raises :class:`BudgetExceeded`; a processor failure lets the call through unchanged."""
        processor = get_processor()
        if processor is None:
            return kwargs
        try:
            admission = processor.admit(self.span, self.request.call)
        except BaseException as exc:
            self._admission_failed(exc)
            return kwargs
        return self._apply(kwargs, admission)

    async def admit_async(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """:meth:`admit` for async calls: a throttled call awaits without blocking the event loop."""
        processor = get_processor()
        if processor is None:
            return kwargs
        try:
            admission = await processor.admit_async(self.span, self.request.call)
        except BaseException as exc:
            self._admission_failed(exc)
            return kwargs
        return self._apply(kwargs, admission)

    def _admission_failed(self, exc: BaseException) -> None:
        """A veto or a cancellation ends the span and propagates; a processor bug is logged once and
        the call goes on as if costwarden had no budgets."""
        if isinstance(exc, BudgetExceeded) or not isinstance(exc, Exception):
            self.fail(exc)
            raise exc
        with best_effort("budget admission"):
            raise exc

    def _apply(self, kwargs: dict[str, Any], admission: Admission | None) -> dict[str, Any]:
        if admission is None:
            return kwargs
        self.admission = admission
        with best_effort("applying the budget decision"):
            call = self.request.call
            if admission.model and admission.model != call.model:
                kwargs = self.op.with_model(kwargs, admission.model)
                call.model = admission.model
                self.span.set_attribute(sc.GEN_AI_REQUEST_MODEL, admission.model)
                self.span.update_name(f"{call.operation} {admission.model}")
            if admission.messages is not None:
                kwargs = self.op.with_messages(kwargs, admission.messages)
        return kwargs

    # -- the call itself -----------------------------------------------------------------------
    def enter(self) -> object:
        """Make the span current and mark that an instrumented call is running."""
        ctx = trace.set_span_in_context(self.span)
        return otel_context.attach(otel_context.set_value(_IN_LLM_CALL, True, ctx))

    @staticmethod
    def exit(token: object) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]

    # -- end -----------------------------------------------------------------------------------
    def finish(self, info: ResponseInfo | None) -> None:
        """Record the response's attributes, usage and cost, then end the span."""
        if self._ended:
            return
        with best_effort("recording the response"):
            if info is not None:
                self._record(info)
        self._end()

    def fail(self, exc: BaseException, info: ResponseInfo | None = None) -> None:
        """End the span for a call that raised (or a stream that broke), counting what arrived."""
        if self._ended:
            return
        with best_effort("recording the error"):
            if info is not None:
                self._record(info)
            self.span.set_attribute(sc.ERROR_TYPE, _error_type(exc))
            self.span.set_status(Status(StatusCode.ERROR, str(exc)[:500] or type(exc).__name__))
        self._end()

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        with best_effort("ending the span"):
            self.span.end()

    def _record(self, info: ResponseInfo) -> None:
        """Put the response's attributes, usage and cost on the span, in one batch (each SDK
        ``set_attributes`` call takes the span's lock once)."""
        attributes = info.attributes
        usage = info.usage or self._estimated_usage(info)
        if usage is not None:
            attributes = {**attributes, **_usage_attributes(usage)}
            if self.admission is not None:
                self.admission.usage = usage
            if self.capture_content and info.output_messages is not None:
                attributes[sc.GEN_AI_OUTPUT_MESSAGES] = _to_json(info.output_messages)
            with best_effort("pricing the call"):  # a pricing bug must not lose the usage
                attributes.update(self._cost_attributes(usage, info.attributes.get(sc.GEN_AI_RESPONSE_MODEL)))
        if attributes:
            self.span.set_attributes(attributes)

    def _estimated_usage(self, info: ResponseInfo) -> Usage | None:
        """Usage estimated from the request (and the output seen) when the response carried none: a
        stream cut before its usage, a response the SDK failed to parse, or an SDK that drops the usage
        block (google-genai < 3.1 does for embeddings, whose cost is all input)."""
        call = self.request.call
        if not (
            info.billed
            or info.output_tokens_estimate
            or call.stream
            or call.operation in NO_OUTPUT_OPERATIONS
        ):
            return None
        return Usage(
            input_tokens=call.estimated_input_tokens,
            output_tokens=info.output_tokens_estimate,
            estimated=True,
        )

    def _cost_attributes(
        self, usage: Usage, response_model: AttributeValue | None
    ) -> dict[str, AttributeValue]:
        """The cost attributes for ``usage`` (priced at the response's model when it has a price),
        reported on the admission too; the unknown-model flag when there is no price."""
        call = self.request.call
        book = get_price_book()
        cost = None
        if (
            isinstance(response_model, str)
            and response_model != call.model
            and not (book.overrides(call.model) and not book.overrides(response_model))
            and book.knows(response_model, call.provider)
        ):  # the response's (dated) model, unless prices: overrides only the model asked for
            cost = book.cost(response_model, usage, call.provider)
        if cost is None:
            cost = book.cost(call.model, usage, call.provider)
        if cost is None:
            return {sc.COSTWARDEN_COST_UNKNOWN_MODEL: True}
        if self.admission is not None:
            self.admission.cost = cost.amount
        return {
            sc.GEN_AI_USAGE_COST_AMOUNT: float(cost.amount),
            sc.GEN_AI_USAGE_COST_CURRENCY: "USD",
            sc.GEN_AI_USAGE_COST_SOURCE: cost.source,
        }


def _usage_attributes(usage: Usage) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        sc.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
    }
    if usage.cache_read_tokens:
        attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        attributes[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        attributes[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
    if usage.estimated:
        attributes[sc.COSTWARDEN_USAGE_ESTIMATED] = True
    return attributes


def _error_type(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _to_json(value: Any) -> str:
    return json.dumps(value, default=_jsonable, ensure_ascii=False)


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    if isinstance(value, Iterable):
        return list(value)
    return repr(value)
