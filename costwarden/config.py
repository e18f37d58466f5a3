"""costwarden's configuration: the schema of ``costwarden.yaml`` and how it is found and checked.

``load_config()`` reads ``COSTWARDEN_CONFIG`` (a path) or ``./costwarden.yaml``, or takes a path or a
dict directly, and validates it. A bad file raises :class:`ConfigError` whose message names the key,
the value and what was expected, e.g. ``budgets[1].alert_at[0]: 1.5 is not between 0 and 1``.
``docs/configuration.md`` documents every key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from costwarden.stores import StoreURLError, parse_store_url

__all__ = [
    "ATTRIBUTION_FIELDS",
    "BudgetConfig",
    "ConfigError",
    "CostwardenConfig",
    "DowngradeConfig",
    "HooksConfig",
    "LedgerConfig",
    "MetricsConfig",
    "ModelConfig",
    "ThrottleConfig",
    "TrimContextConfig",
    "load_config",
]

ATTRIBUTION_FIELDS = ("agent", "workflow", "run_id", "user", "task")
"""Attribution fields, as in ``costwarden.attribute()``."""

ScopeField = Literal["agent", "workflow", "run_id", "user", "task", "model", "provider"]
ENV_VAR = "COSTWARDEN_CONFIG"
DEFAULT_FILE = "costwarden.yaml"


class ConfigError(ValueError):
    """The configuration is invalid. The message names the key path, the value and what was expected.

    ``problems`` lists every problem found, one line each; the message starts with the first.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


# -- value types ------------------------------------------------------------------------------------
def _fraction(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError("is not between 0 and 1")
    return value


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str | int | float) else value


def _model_or_map(value: Any) -> Any:
    ok = isinstance(value, str) or (
        isinstance(value, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    )
    if not ok:
        raise ValueError("is not a model name or a map from model to model (e.g. {gpt-4o: gpt-4o-mini})")
    return value


def _hook_ref(value: str) -> str:
    if not re.fullmatch(r"[\w.]+:[\w.]+", value):
        raise ValueError("is not a 'module:function' reference")
    return value


Fraction = Annotated[float, AfterValidator(_fraction)]
Fractions = Annotated[list[Fraction], BeforeValidator(_as_list)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class DowngradeConfig(_Model):
    """Send a cheaper model once the budget is ``at`` (a fraction) used."""

    at: Fraction
    to: Annotated[str | dict[str, str], BeforeValidator(_model_or_map)]
    """One model for every call, or a map from the requested model to its replacement."""

    def target(self, model: str) -> str | None:
        """The model to send instead of ``model``, or None when this downgrade does not apply to it."""
        if isinstance(self.to, str):
            return None if self.to == model else self.to
        return self.to.get(model)


class ThrottleConfig(_Model):
    """Once the budget is ``at`` used, calls wait for one of ``max_concurrency`` slots and start at
    least ``min_interval`` seconds apart."""

    at: Fraction
    max_concurrency: PositiveInt | None = None
    min_interval: NonNegative = 0.0

    @model_validator(mode="after")
    def _something_to_do(self) -> ThrottleConfig:
        if self.max_concurrency is None and not self.min_interval:
            raise ValueError("needs max_concurrency or min_interval")
        return self


class TrimContextConfig(_Model):
    """Once the budget is ``at`` used, drop the oldest chat turns until the input fits
    ``max_input_tokens`` (never the system prompt or the latest user turn)."""

    at: Fraction = 0.0
    max_input_tokens: PositiveInt


class BudgetConfig(_Model):
    """One budget: which calls it counts, its limits, its period, and what happens as it fills."""

    name: Annotated[str, Field(min_length=1)]
    per: Annotated[list[ScopeField], BeforeValidator(_as_list)] = []
    match: dict[ScopeField, Annotated[list[str], BeforeValidator(_as_list)]] = {}
    limit_usd: Annotated[Decimal, Field(ge=0)] | None = None
    limit_tokens: Annotated[int, Field(ge=0)] | None = None
    limit_calls: Annotated[int, Field(ge=0)] | None = None
    period: Literal["run", "hour", "day", "week", "month"] = "run"
    alert_at: Fractions = []
    downgrade: DowngradeConfig | None = None
    throttle: ThrottleConfig | None = None
    refuse_new_work_at: Fraction | None = None
    on_exceed: Literal["veto", "warn"] = "veto"
    trim_context: TrimContextConfig | None = None
    max_repeats: PositiveInt | None = None
    strict: bool | None = None
    """None: follow the top-level ``strict``."""

    @field_validator("limit_usd", mode="before")
    @classmethod
    def _usd_as_decimal(cls, value: Any) -> Any:
        return Decimal(str(value)) if isinstance(value, float) else value

    @model_validator(mode="after")
    def _has_limit(self) -> BudgetConfig:
        if not self.has_limit and self.max_repeats is None:
            raise ValueError("needs one of limit_usd, limit_tokens, limit_calls (or max_repeats)")
        rules = (self.alert_at, self.downgrade, self.throttle, self.refuse_new_work_at, self.trim_context)
        if not self.has_limit and any(r for r in rules if r is not None and r != []):
            raise ValueError(
                "thresholds (alert_at, downgrade, throttle, ...) need a limit_* to be a fraction of"
            )
        return self

    @property
    def has_limit(self) -> bool:
        return self.limit_usd is not None or self.limit_tokens is not None or self.limit_calls is not None


class LedgerConfig(_Model):
    """The local spend ledger (SQLite) the CLI reads."""

    enabled: bool = True
    path: str | None = None
    """None: the platform's user data directory, or ``COSTWARDEN_LEDGER``."""
    retention_days: PositiveInt = 90


def _capability(value: str) -> str:
    if not re.fullmatch(r"[\w.-]+", value):
        raise ValueError("is not a capability name (letters, digits, '_', '-' and '.')")
    return value


class ModelConfig(_Model):
    """What ``costwarden.cheapest()`` knows about a model beyond its price."""

    capabilities: Annotated[list[Annotated[str, AfterValidator(_capability)]], BeforeValidator(_as_list)] = []
    """Free-form names the app routes on (``tools``, ``vision``, ``long-context``, ``reasoning``…)."""
    context_window: PositiveInt | None = None
    """Tokens the model accepts; None: the price database's value, where it has one."""


class HooksConfig(_Model):
    """User functions costwarden calls, as ``module:function``."""

    on_alert: Annotated[str, AfterValidator(_hook_ref)] | None = None
    """Called with a :class:`costwarden.processor.AlertEvent` when a budget crosses an ``alert_at``."""


class MetricsConfig(_Model):
    """Opt-ins for metric attributes that can have many values."""

    high_cardinality: bool = False
    """Add the scope (run id, user…) to budget gauges and ``user.id`` to ``costwarden.cost``."""


class CostwardenConfig(_Model):
    """The whole ``costwarden.yaml``."""

    store: str = "memory"
    fail: Literal["open", "closed"] = "open"
    store_timeout: Annotated[float, Field(gt=0)] = 0.05
    timezone: str = "UTC"
    default_max_output_tokens: PositiveInt = 1024
    strict: bool = False
    enforce_foreign_spans: bool = False
    ledger: LedgerConfig = LedgerConfig()
    prices: dict[str, dict[str, Any]] = {}
    models: dict[str, ModelConfig] = {}
    hooks: HooksConfig = HooksConfig()
    metrics: MetricsConfig = MetricsConfig()
    budgets: list[BudgetConfig] = []

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        try:
            parse_store_url(value)
        except StoreURLError as exc:
            raise ValueError(f"is not a store: {exc.problem}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not a time zone: expected an IANA name such as Europe/Paris") from None
        return value

    @field_validator("budgets")
    @classmethod
    def _unique_names(cls, budgets: list[BudgetConfig]) -> list[BudgetConfig]:
        seen: set[str] = set()
        for budget in budgets:
            if budget.name in seen:
                raise ValueError(f"two budgets are named {budget.name!r}: names must be unique")
            seen.add(budget.name)
        return budgets

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def context_window(self, model: str) -> int | None:
        """``models.<model>.context_window`` (names match case-insensitively), or None if not declared."""
        wanted = model.lower()
        for name, declared in self.models.items():
            if name.lower() == wanted and declared.context_window is not None:
                return declared.context_window
        return None


# -- loading ----------------------------------------------------------------------------------------
def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | CostwardenConfig | None = None,
) -> CostwardenConfig:
    """Load and validate the configuration.

    ``source`` is a path to a YAML file, a dict in the file's format, a config already loaded, or
    None: then ``COSTWARDEN_CONFIG`` names the file, or ``./costwarden.yaml`` is used if it exists,
    or the defaults (no budgets). Raises :class:`ConfigError` on any problem.
    """
    if isinstance(source, CostwardenConfig):
        return source
    if source is None:
        env = os.environ.get(ENV_VAR)
        if env:
            source = env
        elif Path(DEFAULT_FILE).is_file():
            source = DEFAULT_FILE
        else:
            return CostwardenConfig()
    if isinstance(source, Mapping):
        return _validate(source)
    return _validate(_read_yaml(Path(source)), origin=str(source))


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return {} if data is None else data


def _validate(data: Any, origin: str | None = None) -> CostwardenConfig:
    prefix = f"{origin}: " if origin else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix}the configuration must be a mapping of keys, not {type(data).__name__}")
    try:
        config = CostwardenConfig.model_validate(dict(data))
    except ValidationError as exc:
        by_key: dict[tuple[Any, ...], str] = {}
        for err in exc.errors():  # a union reports once per branch: keep the first per key
            by_key.setdefault(tuple(p for p in err["loc"] if _in_path(p)), prefix + _describe(err))
        raise ConfigError(list(by_key.values())) from None
    problems = [prefix + p for p in _unpriced_downgrades(config)]
    if problems:
        raise ConfigError(problems)
    return config


def _describe(err: Mapping[str, Any]) -> str:
    """One pydantic error as ``key.path: value what-was-expected``."""
    path = _path(err["loc"])
    value = err.get("input")
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key (value {_show(value)})"
    if kind == "missing":
        return f"{path}: missing (required)"
    message = str(err["msg"])
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        if isinstance(value, Mapping) and "name" in value:  # a whole budget: name it instead of dumping it
            return f"{path} ({value['name']!r}): {message}"
        if isinstance(value, Mapping | list):
            return f"{path}: {message}"
        return f"{path}: {_show(value)} {message}"
    if kind == "literal_error":
        expected = message.removeprefix("Input should be ")
        return f"{path}: {_show(value)} is not one of {expected}"
    return f"{path}: {_show(value)} is not valid: {message[0].lower() + message[1:]}"


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _in_path(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _in_path(part: Any) -> bool:
    """False for the union branches and validator names pydantic adds to an error's location."""
    return isinstance(part, int) or not (part in {"str", "dict[str,str]"} or "[" in str(part))


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: ..." for k in value) + "}"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _unpriced_downgrades(config: CostwardenConfig) -> list[str]:
    """Price overrides the price book refuses, and downgrades to a model with no known price (it
    could not be costed)."""
    from costwarden.pricing import PriceBook, PriceError

    try:
        book = PriceBook(config.prices)
    except PriceError as exc:
        return [str(exc)]
    problems = []
    for i, budget in enumerate(config.budgets):
        if budget.downgrade is None:
            continue
        provider = _exact(budget.match.get("provider"))
        to = budget.downgrade.to
        targets = [("", to)] if isinstance(to, str) else [(f".{k}", v) for k, v in to.items()]
        for suffix, model in targets:
            if not book.knows(model, provider):
                problems.append(
                    f"budgets[{i}].downgrade.to{suffix}: {model!r} has no known price: "
                    "expected a model in the price database or in prices:"
                )
    return problems


def _exact(values: list[str] | None) -> str | None:
    if values and len(values) == 1 and not any(c in values[0] for c in "*?["):
        return values[0]
    return None
