"""The one best-effort guard around everything costwarden does on the call path.

costwarden must never break the app: an error inside costwarden is logged once per place and
exception type, and the user's call goes on as if costwarden were not there. The test suite sets
``COSTWARDEN_RAISE_INTERNAL_ERRORS=1`` so that such bugs fail tests instead of hiding.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

__all__ = ["best_effort", "best_effort_call", "raise_internal_errors"]

logger = logging.getLogger("costwarden")

_P = ParamSpec("_P")
_R = TypeVar("_R")

_reported: set[tuple[str, type[BaseException]]] = set()
_reported_lock = threading.Lock()
_MAX_REPORTED = 1000


def raise_internal_errors() -> bool:
    """True under the test suite: internal errors propagate so they are seen."""
    return os.environ.get("COSTWARDEN_RAISE_INTERNAL_ERRORS", "") in {"1", "true", "yes"}


def _report(where: str, exc: Exception) -> None:
    key = (where, type(exc))
    with _reported_lock:
        if key in _reported:
            return
        if len(_reported) < _MAX_REPORTED:
            _reported.add(key)
    logger.warning(
        "costwarden: internal error in %s; the call goes on without it (reported once): %r",
        where,
        exc,
        exc_info=exc,
    )


class best_effort:  # lower case: used like a function, `with best_effort("reading the request"):`
    """Run a block of costwarden's own work; an exception is logged once and swallowed.

    A class, not a ``@contextmanager`` generator: it runs several times on every instrumented call,
    and a generator-based context manager costs several times more to enter and leave."""

    __slots__ = ("where",)

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if not isinstance(exc, Exception):  # no error, or KeyboardInterrupt / cancellation: not ours
            return False
        if raise_internal_errors():
            return False
        _report(self.where, exc)
        return True


def best_effort_call(where: str, default: _R) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a costwarden function: on an internal error, log once and return ``default``."""

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        @wraps(func)
        def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                if raise_internal_errors():
                    raise
                _report(where, exc)
                return default

        return guarded

    return decorate
