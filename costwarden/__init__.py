"""costwarden: a budget on every LLM call, and where the money went.

Usage::

    import costwarden

    costwarden.configure("costwarden.yaml")  # or run under `opentelemetry-instrument`
    with costwarden.attribute(agent="researcher", workflow="brief", run_id=run.id):
        client.chat.completions.create(...)  # priced, attributed, admitted by the budgets
"""

from costwarden._attribution import attribute, current_attribution
from costwarden._errors import BudgetExceeded
from costwarden._guard import guard
from costwarden._routing import NoModelFits, Route, cheapest
from costwarden._setup import configure

__all__ = [
    "BudgetExceeded",
    "NoModelFits",
    "Route",
    "attribute",
    "cheapest",
    "configure",
    "current_attribution",
    "guard",
]
__version__ = "0.1.0"
