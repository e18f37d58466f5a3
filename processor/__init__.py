"""costwarden.processor: the budget span processor and its parts.

:class:`BudgetSpanProcessor` is installed on the tracer provider by ``costwarden.configure()`` (or
``opentelemetry-instrument``); costwarden's instrumentation calls its ``admit`` before each call is
sent. :class:`RecordLLMCalls` keeps the calls a trace sampler drops recorded, so that they are
counted. :func:`budget_status` reads each budget's state for ``costwarden status``.
"""

from costwarden.processor._alerts import AlertEvent
from costwarden.processor._processor import BudgetSpanProcessor
from costwarden.processor._sampling import RecordLLMCalls
from costwarden.processor._status import BudgetStatus, Headroom, budget_status, config_budget_status

__all__ = [
    "AlertEvent",
    "BudgetSpanProcessor",
    "BudgetStatus",
    "Headroom",
    "RecordLLMCalls",
    "budget_status",
    "config_budget_status",
]
