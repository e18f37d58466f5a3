"""costwarden: a budget on every LLM call, and where the money went."""

from costwarden._errors import BudgetExceeded

__all__ = ["BudgetExceeded"]
__version__ = "0.1.0"
