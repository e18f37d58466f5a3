"""Every telemetry name costwarden emits: span attributes, events, metrics, units.

Names that OpenTelemetry's semantic conventions define are imported from ``opentelemetry.semconv``;
costwarden's own (cost, budget decisions) are constants next to them. ``docs/telemetry.md`` lists each
of them and ``tests/test_telemetry_docs.py`` checks that the two agree.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv._incubating.attributes import user_attributes as _user
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import server_attributes as _server

__all__ = [
    "ATTRIBUTION_ATTRIBUTES",
    "COSTWARDEN_BUDGET_DECISION",
    "COSTWARDEN_BUDGET_NAME",
    "COSTWARDEN_CONTEXT_TRIMMED_TOKENS",
    "COSTWARDEN_COST_UNKNOWN_MODEL",
    "COSTWARDEN_DOWNGRADED_FROM",
    "COSTWARDEN_TASK_ID",
    "COSTWARDEN_USAGE_ESTIMATED",
    "ERROR_TYPE",
    "EVENT_BUDGET_THRESHOLD",
    "GEN_AI_AGENT_ID",
    "GEN_AI_AGENT_NAME",
    "GEN_AI_CONVERSATION_ID",
    "GEN_AI_INPUT_MESSAGES",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_OUTPUT_MESSAGES",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_CHOICE_COUNT",
    "GEN_AI_REQUEST_FREQUENCY_PENALTY",
    "GEN_AI_REQUEST_MAX_TOKENS",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_REQUEST_PRESENCE_PENALTY",
    "GEN_AI_REQUEST_SEED",
    "GEN_AI_REQUEST_STOP_SEQUENCES",
    "GEN_AI_REQUEST_TEMPERATURE",
    "GEN_AI_REQUEST_TOP_P",
    "GEN_AI_RESPONSE_FINISH_REASONS",
    "GEN_AI_RESPONSE_ID",
    "GEN_AI_RESPONSE_MODEL",
    "GEN_AI_SYSTEM",
    "GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS",
    "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS",
    "GEN_AI_USAGE_COMPLETION_TOKENS",
    "GEN_AI_USAGE_COST_AMOUNT",
    "GEN_AI_USAGE_COST_CURRENCY",
    "GEN_AI_USAGE_COST_SOURCE",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "GEN_AI_USAGE_PROMPT_TOKENS",
    "GEN_AI_USAGE_REASONING_OUTPUT_TOKENS",
    "GEN_AI_WORKFLOW_NAME",
    "METRIC_BUDGET_DECISIONS",
    "METRIC_BUDGET_LIMIT",
    "METRIC_BUDGET_PERIOD_END",
    "METRIC_BUDGET_SPENT",
    "METRIC_COST",
    "METRIC_OPERATION_DURATION",
    "METRIC_TOKEN_USAGE",
    "OPERATION_EXECUTE_TOOL",
    "OPERATION_INVOKE_AGENT",
    "OPERATION_INVOKE_WORKFLOW",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "USER_ID",
]

# --- GenAI semantic conventions (span attributes) -------------------------------------------------
GEN_AI_OPERATION_NAME: Final = _gen_ai.GEN_AI_OPERATION_NAME
GEN_AI_PROVIDER_NAME: Final = _gen_ai.GEN_AI_PROVIDER_NAME
GEN_AI_REQUEST_MODEL: Final = _gen_ai.GEN_AI_REQUEST_MODEL
GEN_AI_REQUEST_MAX_TOKENS: Final = _gen_ai.GEN_AI_REQUEST_MAX_TOKENS
GEN_AI_REQUEST_CHOICE_COUNT: Final = _gen_ai.GEN_AI_REQUEST_CHOICE_COUNT
GEN_AI_REQUEST_TEMPERATURE: Final = _gen_ai.GEN_AI_REQUEST_TEMPERATURE
GEN_AI_REQUEST_TOP_P: Final = _gen_ai.GEN_AI_REQUEST_TOP_P
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = _gen_ai.GEN_AI_REQUEST_FREQUENCY_PENALTY
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = _gen_ai.GEN_AI_REQUEST_PRESENCE_PENALTY
GEN_AI_REQUEST_SEED: Final = _gen_ai.GEN_AI_REQUEST_SEED
GEN_AI_REQUEST_STOP_SEQUENCES: Final = _gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES
GEN_AI_RESPONSE_ID: Final = _gen_ai.GEN_AI_RESPONSE_ID
GEN_AI_RESPONSE_MODEL: Final = _gen_ai.GEN_AI_RESPONSE_MODEL
GEN_AI_RESPONSE_FINISH_REASONS: Final = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
GEN_AI_USAGE_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
GEN_AI_USAGE_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
GEN_AI_INPUT_MESSAGES: Final = _gen_ai.GEN_AI_INPUT_MESSAGES
GEN_AI_OUTPUT_MESSAGES: Final = _gen_ai.GEN_AI_OUTPUT_MESSAGES
GEN_AI_AGENT_NAME: Final = _gen_ai.GEN_AI_AGENT_NAME
GEN_AI_AGENT_ID: Final = _gen_ai.GEN_AI_AGENT_ID
GEN_AI_WORKFLOW_NAME: Final = _gen_ai.GEN_AI_WORKFLOW_NAME
GEN_AI_CONVERSATION_ID: Final = _gen_ai.GEN_AI_CONVERSATION_ID
USER_ID: Final = _user.USER_ID
ERROR_TYPE: Final = _error.ERROR_TYPE
SERVER_ADDRESS: Final = _server.SERVER_ADDRESS
SERVER_PORT: Final = _server.SERVER_PORT

# Older names other instrumentations still emit; read (never written) when pricing their spans.
GEN_AI_SYSTEM: Final = _gen_ai.GEN_AI_SYSTEM
GEN_AI_USAGE_PROMPT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_PROMPT_TOKENS
GEN_AI_USAGE_COMPLETION_TOKENS: Final = _gen_ai.GEN_AI_USAGE_COMPLETION_TOKENS

# --- Cost (as proposed for the GenAI semantic conventions) ---------------------------------------
GEN_AI_USAGE_COST_AMOUNT: Final = "gen_ai.usage.cost.amount"
GEN_AI_USAGE_COST_CURRENCY: Final = "gen_ai.usage.cost.currency"
GEN_AI_USAGE_COST_SOURCE: Final = "gen_ai.usage.cost.source"

# --- costwarden's own span attributes ------------------------------------------------------------
COSTWARDEN_TASK_ID: Final = "costwarden.task.id"
COSTWARDEN_COST_UNKNOWN_MODEL: Final = "costwarden.cost.unknown_model"
COSTWARDEN_USAGE_ESTIMATED: Final = "costwarden.usage.estimated"
COSTWARDEN_BUDGET_DECISION: Final = "costwarden.budget.decision"
COSTWARDEN_BUDGET_NAME: Final = "costwarden.budget.name"
COSTWARDEN_DOWNGRADED_FROM: Final = "costwarden.downgraded_from"
COSTWARDEN_CONTEXT_TRIMMED_TOKENS: Final = "costwarden.context.trimmed_tokens"

# Attribution: the field of ``costwarden.attribute()`` and the span attribute that carries it.
ATTRIBUTION_ATTRIBUTES: Final[dict[str, str]] = {
    "agent": GEN_AI_AGENT_NAME,
    "workflow": GEN_AI_WORKFLOW_NAME,
    "run_id": GEN_AI_CONVERSATION_ID,
    "user": USER_ID,
    "task": COSTWARDEN_TASK_ID,
}

# --- Span events ---------------------------------------------------------------------------------
EVENT_BUDGET_THRESHOLD: Final = "costwarden.budget.threshold"
# Attributes of that event, besides costwarden.budget.name and costwarden.threshold.
EVENT_ATTR_BUDGET_FRACTION: Final = "costwarden.budget.fraction"
EVENT_ATTR_BUDGET_PERIOD: Final = "costwarden.budget.period"

# --- Read from other instrumentations (never written), to price and count their spans -------------
FOREIGN_LLM_REQUEST_TYPE: Final = "llm.request.type"  # OpenLLMetry
FOREIGN_LLM_USAGE_PROMPT_TOKENS: Final = "llm.usage.prompt_tokens"  # OpenLLMetry
FOREIGN_LLM_USAGE_COMPLETION_TOKENS: Final = "llm.usage.completion_tokens"  # OpenLLMetry
FOREIGN_LLM_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"  # OpenInference
FOREIGN_LLM_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"  # OpenInference
FOREIGN_LLM_MODEL_NAME: Final = "llm.model_name"  # OpenInference
FOREIGN_LLM_PROVIDER: Final = "llm.provider"  # OpenInference
FOREIGN_LLM_SYSTEM: Final = "llm.system"  # OpenInference
FOREIGN_GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"  # OpenLIT
FOREIGN_AG2_SPAN_TYPE: Final = "ag2.span.type"  # AG2 1.x TelemetryMiddleware: only "llm" is a call

# --- Metrics: (name, unit, description) ----------------------------------------------------------
METRIC_TOKEN_USAGE: Final = _gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
METRIC_OPERATION_DURATION: Final = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION
METRIC_COST: Final = "costwarden.cost"
METRIC_BUDGET_LIMIT: Final = "costwarden.budget.limit"
METRIC_BUDGET_SPENT: Final = "costwarden.budget.spent"
# When the budget's current period ends (UNIX seconds), in its configured time zone: rules forecast to
# it instead of doing calendar arithmetic in UTC. None for `period: run`.
METRIC_BUDGET_PERIOD_END: Final = "costwarden.budget.period_end"
METRIC_BUDGET_DECISIONS: Final = "costwarden.budget.decisions"

METRIC_UNITS: Final[dict[str, str]] = {
    METRIC_TOKEN_USAGE: "{token}",
    METRIC_OPERATION_DURATION: "s",
    METRIC_COST: "USD",
    # Not "1": an OTLP gauge with unit "1" gets a `_ratio` suffix in Prometheus' OTLP receiver and the
    # Collector's exporters but none from opentelemetry-exporter-prometheus. An annotation adds no suffix
    # on any path, so the names are the same however metrics reach Prometheus; `costwarden.unit` says
    # whether the value is USD, tokens or calls.
    METRIC_BUDGET_LIMIT: "{amount}",
    METRIC_BUDGET_SPENT: "{amount}",
    # "s": `costwarden_budget_period_end_seconds` on every path to Prometheus.
    METRIC_BUDGET_PERIOD_END: "s",
    METRIC_BUDGET_DECISIONS: "{decision}",
}

# Semconv's advice for gen_ai.client.* histograms.
TOKEN_USAGE_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip

# Metric attribute keys (low cardinality only; never a run id, request id or raw user id by default).
METRIC_ATTR_TOKEN_TYPE: Final = _gen_ai.GEN_AI_TOKEN_TYPE
METRIC_ATTR_BUDGET: Final = "costwarden.budget"
METRIC_ATTR_UNIT: Final = "costwarden.unit"
METRIC_ATTR_DECISION: Final = "costwarden.decision"
METRIC_ATTR_SCOPE: Final = "costwarden.scope"
METRIC_ATTR_THRESHOLD: Final = "costwarden.threshold"
# The budget's period (run|hour|day|week|month) on the budget gauges, so rules can pick daily or weekly
# budgets and forecast to the end of the period.
METRIC_ATTR_PERIOD: Final = "costwarden.period"

# --- gen_ai.operation.name values costwarden emits for agent frameworks -------------------------
OPERATION_INVOKE_AGENT: Final = "invoke_agent"
OPERATION_INVOKE_WORKFLOW: Final = "invoke_workflow"
OPERATION_EXECUTE_TOOL: Final = "execute_tool"
