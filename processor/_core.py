"""The state the processor's parts share: config, store, instruments, compiled budgets, the calls in
flight, and the per-call-key plan cache."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from costwarden._fork import on_fork
from costwarden._types import Admission
from costwarden.config import CostwardenConfig
from costwarden.processor._budgets import Budget, CallKey, Plan, build_plan
from costwarden.processor._metrics import Instruments
from costwarden.processor._spans import ATTRIBUTION_KEYS
from costwarden.processor._throttle import Gate
from costwarden.stores._base import BudgetStore

__all__ = ["CACHE_LIMIT", "NO_CALL", "Clock", "Core", "Ticket", "active_guards", "call_key", "logger"]

logger = logging.getLogger("costwarden.processor")

CACHE_LIMIT = 10_000  # entries in a per-call-key cache before it is emptied and rebuilt
NO_CALL: CallKey = (None, None, None, None, None, "", "", ())
_NO_GUARDS: tuple[str, ...] = ()
_AGENT, _WORKFLOW, _RUN, _USER, _TASK = ATTRIBUTION_KEYS

active_guards: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "costwarden_active_guards", default=_NO_GUARDS
)
"""Ids of the :func:`costwarden.guard` proxies the current call goes through."""


def call_key(attrs: Any, model: str, provider: str) -> CallKey:
    """The call key of a span with attributes ``attrs`` (attribution, model, provider, guards)."""
    get = attrs.get
    return (
        get(_AGENT),
        get(_WORKFLOW),
        get(_RUN),
        get(_USER),
        get(_TASK),
        model,
        provider,
        active_guards.get(),
    )


class Ticket:
    """One admitted call in flight: what it reserved, where, and the throttle slots it holds."""

    __slots__ = ("admission", "call", "foreign", "gates", "keys", "plan", "released", "rid")

    def __init__(
        self,
        rid: str | None,
        plan: Plan | None,
        call: CallKey,
        foreign: bool = False,
        admission: Admission | None = None,
    ) -> None:
        self.rid = rid
        self.admission = admission
        """The answer given to the instrumentation, which reports the call's usage and cost on it."""
        self.plan = plan
        self.keys = plan.keys if plan else ()
        self.call = call
        self.foreign = foreign
        self.gates: list[Gate] = []
        self.released = False


class Clock:
    """The current time in the configured zone, from the system clock or an injected one."""

    def __init__(self, clock: Callable[[], datetime] | None, tz: tzinfo) -> None:
        self._clock = clock
        self._tz = tz
        self.timestamp: Callable[[], float] = time.time if clock is None else self._timestamp

    def now(self) -> datetime:
        if self._clock is None:
            return datetime.now(self._tz)
        now = self._clock()
        return now if now.tzinfo is not None else now.replace(tzinfo=self._tz)

    def _timestamp(self) -> float:
        return self.now().timestamp()


class Core:
    """Shared by admission, settlement, foreign spans and alerts. The dicts are never replaced (only
    cleared), so the parts may keep references to them."""

    def __init__(
        self,
        config: CostwardenConfig,
        store: BudgetStore,
        instruments: Instruments,
        clock: Clock,
    ) -> None:
        self.config = config
        self.tz = config.tz
        self.store = store
        self.instruments = instruments
        self.clock = clock
        self.budgets = [Budget(b, strict=config.strict) for b in config.budgets]
        self.plans: dict[CallKey, Plan] = {}
        self.tickets: dict[int, Ticket] = {}
        self.frames: dict[int, tuple[Any, ...]] = {}
        self.foreign_open: dict[int, bool] = {}
        self.lock = threading.Lock()
        self._warned: set[str] = set()

        self.now = clock.now
        self.timestamp = clock.timestamp
        on_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        """In a forked child: the parent's calls in flight are not this process's (their spans never
        end here); attribution frames stay, as the child may go on inside its parent's agent span."""
        self.lock = threading.Lock()
        self.tickets.clear()
        self.foreign_open.clear()

    def plan(self, call: CallKey) -> Plan:
        """The cached plan of ``call``, rebuilt when a period it covers has ended."""
        plan = self.plans.get(call)
        if plan is not None and (plan.valid_until == float("inf") or self.timestamp() < plan.valid_until):
            return plan
        if len(self.plans) > CACHE_LIMIT:
            self.plans.clear()
        plan = self.plans[call] = build_plan(self.budgets, call, self.now(), self.tz)
        return plan

    def set_budgets(self, budgets: list[Budget]) -> None:
        self.budgets = budgets
        self.plans.clear()

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)
