"""Per-process state across ``os.fork()``: prefork servers (gunicorn, Celery) and multiprocessing's
fork start method.

A forked child starts as a copy of its parent that runs only the thread that called ``fork()``: a lock
another thread held stays locked for good, the parent's calls in flight never end there, and ids and
connections are the parent's. An object holding such state registers here what to do around a fork;
the object is held weakly, so registering does not keep it alive.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable

__all__ = ["on_fork"]

logger = logging.getLogger("costwarden")


def on_fork(
    *,
    before: Callable[[], None] | None = None,
    after_in_parent: Callable[[], None] | None = None,
    after_in_child: Callable[[], None] | None = None,
) -> None:
    """Run these bound methods around every ``fork()`` for as long as their object lives.

    Errors are logged, never raised: a fork must not fail because of costwarden."""
    if not hasattr(os, "register_at_fork"):  # no fork on this platform
        return
    hooks = {"before": before, "after_in_parent": after_in_parent, "after_in_child": after_in_child}
    os.register_at_fork(**{name: _weak(method) for name, method in hooks.items() if method is not None})


def _weak(method: Callable[[], None]) -> Callable[[], None]:
    ref = weakref.WeakMethod(method)

    def call() -> None:
        bound = ref()
        if bound is None:
            return
        try:
            bound()
        except Exception:
            logger.exception("costwarden: error keeping state right across fork() (ignored)")

    return call
