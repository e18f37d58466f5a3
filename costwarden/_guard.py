"""``guard()``: a budget on one client, for users coming from TokenFence.

Built on the installed budget processor, not beside it: ``guard`` adds a budget that only counts
calls made through the returned proxy (the proxy marks its calls with a context variable the
processor reads at admission), so alerts, downgrades, vetoes, metrics and ``costwarden status``
all work as for budgets from ``costwarden.yaml``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import weakref
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, Literal, TypeVar

import wrapt

from costwarden._state import get_processor

__all__ = ["guard"]

T = TypeVar("T")
_ids = itertools.count(1)


def guard(
    client: T,
    budget: float | Decimal | str,
    *,
    downgrade_at: float | None = None,
    downgrade_model: str | None = None,
    on_budget_hit: Literal["kill", "warn"] = "kill",
    name: str | None = None,
    period: Literal["run", "hour", "day", "week", "month"] = "run",
) -> T:
    """Put a USD budget on one LLM client and return the client to use instead.

    Args:
        client: an SDK client costwarden instruments (``openai.OpenAI()``, ``AsyncOpenAI()``…).
        budget: the limit in USD for all calls through the returned client.
        downgrade_at: the fraction of ``budget`` (0..1) from which calls use ``downgrade_model``.
        downgrade_model: the cheaper model to send once ``downgrade_at`` is reached.
        on_budget_hit: ``"kill"`` raises :class:`costwarden.BudgetExceeded` before a call that
            would pass the budget; ``"warn"`` lets it through and records the decision.
        name: the budget's name in telemetry and ``costwarden status`` (default ``guard-N``).
        period: when the budget resets: ``run`` (never), or a calendar hour, day, week or month.

    The budget is removed when the returned client, and everything reached from it (sub-clients such
    as ``with_options(...)``, resources such as ``client.chat.completions``), are garbage-collected.
    costwarden must be set up; if nothing installed it yet, ``guard`` calls :func:`costwarden.configure`.
    """
    from costwarden.config import BudgetConfig, ConfigError  # pydantic: only when a guard is made

    if (downgrade_at is None) != (downgrade_model is None):
        raise ConfigError("guard: downgrade_at and downgrade_model go together: give both or neither")
    if on_budget_hit not in ("kill", "warn"):
        raise ConfigError(f"guard: on_budget_hit {on_budget_hit!r} is not one of 'kill' or 'warn'")
    processor = _installed_processor()
    guard_id = name or f"guard-{next(_ids)}"
    config = BudgetConfig(
        name=guard_id,
        limit_usd=Decimal(str(budget)),
        period=period,
        on_exceed="veto" if on_budget_hit == "kill" else "warn",
        downgrade=_downgrade(downgrade_at, downgrade_model),
    )
    processor.add_budget(config, guard=guard_id)
    mark = _Mark(guard_id)
    weakref.finalize(mark, processor.remove_budget, guard_id)
    return _Guarded(client, mark)  # type: ignore[return-value]


def _installed_processor() -> Any:
    processor = get_processor()
    if processor is None:
        from costwarden._setup import configure

        configure()
        processor = get_processor()
    if processor is None:
        raise RuntimeError("costwarden is not set up: call costwarden.configure() before guard()")
    return processor


def _downgrade(at: float | None, model: str | None) -> Any:
    if at is None or model is None:
        return None
    from costwarden.config import ConfigError, DowngradeConfig
    from costwarden.pricing import get_price_book

    if not get_price_book().knows(model, None):
        raise ConfigError(f"guard: downgrade_model {model!r} has no known price: expected a priced model")
    try:
        return DowngradeConfig(at=at, to=model)
    except ValueError:
        raise ConfigError(f"guard: downgrade_at {at!r} is not between 0 and 1") from None


class _Mark:
    """A guard's id, held by every proxy and wrapped method reached from the guarded client: the
    budget is removed when the last of them is gone, not when the client proxy alone is."""

    __slots__ = ("__weakref__", "id")

    def __init__(self, guard_id: str) -> None:
        self.id = guard_id


@contextlib.contextmanager
def _marked(mark: _Mark) -> Iterator[None]:
    from costwarden.processor._processor import active_guards

    token = active_guards.set((*active_guards.get(), mark.id))
    try:
        yield
    finally:
        active_guards.reset(token)


class _Guarded(wrapt.ObjectProxy):
    """Proxies a client (and the resources reached from it) so its calls run marked by the guard."""

    def __init__(self, wrapped: Any, mark: _Mark) -> None:
        super().__init__(wrapped)
        self._self_mark = mark
        self._self_package = type(wrapped).__module__.partition(".")[0]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_self_"):
            raise AttributeError(name)
        return _wrap(getattr(self.__wrapped__, name), self._self_mark, self._self_package)

    def __enter__(self) -> Any:
        with _marked(self._self_mark):
            return _wrap(self.__wrapped__.__enter__(), self._self_mark, self._self_package)

    def __exit__(self, *exc: Any) -> Any:
        return self.__wrapped__.__exit__(*exc)

    async def __aenter__(self) -> Any:
        with _marked(self._self_mark):
            return _wrap(await self.__wrapped__.__aenter__(), self._self_mark, self._self_package)

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.__wrapped__.__aexit__(*exc)


def _wrap(value: Any, mark: _Mark, package: str) -> Any:
    """Calls made through ``value`` run marked; objects of the SDK's package are proxied too."""
    if inspect.iscoroutinefunction(value):
        return _async_call(value, mark, package)
    if callable(value) and not isinstance(value, type):
        return _sync_call(value, mark, package)
    if type(value).__module__.partition(".")[0] == package and package:
        return _Guarded(value, mark)
    return value


def _sync_call(function: Callable[..., Any], mark: _Mark, package: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _marked(mark):
            result = function(*args, **kwargs)
        if inspect.iscoroutine(result):  # an async SDK method behind a sync-looking wrapper
            return _marked_coroutine(result, mark)
        return _wrap_result(result, mark, package)

    return call


def _async_call(function: Callable[..., Any], mark: _Mark, package: str) -> Callable[..., Any]:
    @functools.wraps(function)
    async def call(*args: Any, **kwargs: Any) -> Any:
        with _marked(mark):
            return _wrap_result(await function(*args, **kwargs), mark, package)

    return call


async def _marked_coroutine(coroutine: Any, mark: _Mark) -> Any:
    with _marked(mark):
        return await coroutine


def _wrap_result(result: Any, mark: _Mark, package: str) -> Any:
    """Stream managers and sub-clients (``with_options``) come back proxied; responses as they are."""
    is_manager = hasattr(type(result), "__enter__") or hasattr(type(result), "__aenter__")
    is_client = hasattr(result, "chat") or hasattr(result, "completions")
    if (is_manager or is_client) and type(result).__module__.partition(".")[0] == package:
        return _Guarded(result, mark)
    return result
