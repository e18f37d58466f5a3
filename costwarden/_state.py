"""The one piece of global state: the installed budget processor.

Instrumentations ask it to admit calls; ``configure()`` and ``opentelemetry-instrument`` install it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from costwarden.processor import BudgetSpanProcessor

__all__ = ["get_processor", "set_processor"]

_lock = threading.Lock()
_processor: BudgetSpanProcessor | None = None


def get_processor() -> BudgetSpanProcessor | None:
    """The installed budget processor, or None when costwarden only records and enforces nothing."""
    return _processor


def set_processor(processor: BudgetSpanProcessor | None) -> BudgetSpanProcessor | None:
    """Install ``processor`` (or uninstall with None); returns the one it replaced."""
    global _processor
    with _lock:
        previous, _processor = _processor, processor
    return previous
