"""Who spent it: ``attribute(agent=, workflow=, run_id=, user=, task=)``.

Attribution rides on OpenTelemetry context: one context key holds an immutable mapping (cheap to read
on every call), and the fields that a sub-agent in another process should inherit — workflow, run and
user — are also put in W3C baggage, so ``opentelemetry.propagate.inject()`` carries them in the
``baggage`` header and a process that extracts it sees them. Agent and task stay local: a sub-agent is
a different agent doing its own task.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, Final, TypeVar

from opentelemetry import baggage
from opentelemetry import context as otel_context

from costwarden.semconv import ATTRIBUTION_ATTRIBUTES

__all__ = ["BAGGAGE_KEYS", "attribute", "attribution_attributes", "current_attribution"]

logger = logging.getLogger("costwarden")

FIELDS: Final = ("agent", "workflow", "run_id", "user", "task")
BAGGAGE_KEYS: Final[dict[str, str]] = {
    field: ATTRIBUTION_ATTRIBUTES[field] for field in ("workflow", "run_id", "user")
}
"""The fields propagated to other processes, and the W3C baggage key each travels under."""
MAX_LENGTH: Final = 256

_KEY = otel_context.create_key("costwarden-attribution")
_EMPTY: Mapping[str, str] = MappingProxyType({})
_F = TypeVar("_F", bound=Callable[..., Any])


def _clean(field: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"attribute({field}=...) must be a string, got {type(value).__name__}")
    text = str(value)
    if not text:
        raise ValueError(f"attribute({field}=...) must not be empty")
    if len(text) > MAX_LENGTH:
        logger.warning(
            "costwarden: attribute(%s=...) is %d characters; kept the first %d", field, len(text), MAX_LENGTH
        )
        text = text[:MAX_LENGTH]
    return text


class attribute:
    """Attribute the LLM calls made inside to an agent, workflow, run, user and task.

    A context manager and a decorator (of sync and async functions). Nests: inner values override
    outer ones, and a field left as None keeps the outer value::

        with attribute(workflow="brief", run_id=run.id, user=user.id):
            with attribute(agent="researcher"):
                client.chat.completions.create(...)

        @attribute(agent="writer")
        async def write(notes): ...
    """

    def __init__(
        self,
        agent: str | None = None,
        workflow: str | None = None,
        run_id: str | None = None,
        user: str | None = None,
        task: str | None = None,
    ) -> None:
        given = {"agent": agent, "workflow": workflow, "run_id": run_id, "user": user, "task": task}
        self._values = {field: _clean(field, value) for field, value in given.items() if value is not None}
        self._tokens: list[object] = []

    def _context(self) -> otel_context.Context:
        merged = {**current_attribution(), **self._values}
        ctx = otel_context.set_value(_KEY, MappingProxyType(merged))
        for field, key in BAGGAGE_KEYS.items():
            if field in self._values:
                ctx = baggage.set_baggage(key, self._values[field], context=ctx)
        return ctx

    def __enter__(self) -> attribute:
        self._tokens.append(otel_context.attach(self._context()))
        return self

    def __exit__(self, *exc: object) -> None:
        otel_context.detach(self._tokens.pop())  # type: ignore[arg-type]

    def __call__(self, func: _F) -> _F:
        if inspect.isgeneratorfunction(func):
            return self._generator(func)  # type: ignore[return-value]
        if inspect.isasyncgenfunction(func):
            return self._async_generator(func)  # type: ignore[return-value]
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_attributed(*args: Any, **kwargs: Any) -> Any:
                with self._scope():
                    return await func(*args, **kwargs)

            return async_attributed  # type: ignore[return-value]

        @functools.wraps(func)
        def attributed(*args: Any, **kwargs: Any) -> Any:
            with self._scope():
                return func(*args, **kwargs)

        return attributed  # type: ignore[return-value]

    def _generator(self, func: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
        """A generator function whose body runs attributed, step by step: the scope is entered for each
        step the caller asks for and left at each ``yield`` (the caller's own code stays its own)."""

        @functools.wraps(func)
        def attributed(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            steps = func(*args, **kwargs)
            step: Callable[[Any], Any] = steps.send
            value: Any = None
            try:
                while True:
                    with self._scope():
                        try:
                            item = step(value)
                        except StopIteration as stop:
                            return stop.value
                    step = steps.send
                    try:
                        value = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # thrown in by the caller: into the body, attributed
                        step, value = steps.throw, exc
            finally:
                with self._scope():
                    steps.close()

        return attributed

    def _async_generator(self, func: Callable[..., AsyncGenerator[Any, Any]]) -> Callable[..., Any]:
        """:meth:`_generator` for async generator functions."""

        @functools.wraps(func)
        async def attributed(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            steps = func(*args, **kwargs)
            step: Callable[[Any], Awaitable[Any]] = steps.asend
            value: Any = None
            try:
                while True:
                    with self._scope():
                        try:
                            item = await step(value)
                        except StopAsyncIteration:
                            return
                    step = steps.asend
                    try:
                        value = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as exc:
                        step, value = steps.athrow, exc
            finally:
                with self._scope():
                    await steps.aclose()

        return attributed

    @contextmanager
    def _scope(self) -> Iterator[None]:
        # A fresh attach per invocation: the decorated function may run in many threads or tasks at once.
        token = otel_context.attach(self._context())
        try:
            yield
        finally:
            otel_context.detach(token)


def current_attribution(context: otel_context.Context | None = None) -> Mapping[str, str]:
    """The attribution in effect: fields set in this process, then those that arrived in baggage."""
    local: Mapping[str, str] = otel_context.get_value(_KEY, context) or _EMPTY  # type: ignore[assignment]
    if len(local) == len(FIELDS):
        return local
    entries = baggage.get_all(context)
    if not entries:
        return local
    merged = dict(local)
    for field, key in BAGGAGE_KEYS.items():
        if field not in merged and isinstance(value := entries.get(key), str) and value:
            merged[field] = value[:MAX_LENGTH]
    return merged


def attribution_attributes(context: otel_context.Context | None = None) -> dict[str, str]:
    """:func:`current_attribution` keyed by span attribute names (``gen_ai.agent.name`` ...)."""
    return {ATTRIBUTION_ATTRIBUTES[field]: value for field, value in current_attribution(context).items()}
