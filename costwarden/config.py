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


def _not_bool(value: Any) -> Any:
    """Refuse ``true``/``false`` where a number is expected (pydantic would read them as 1 and 0)."""
    if isinstance(value, bool):
        raise ValueError("is a boolean: expected a number")
    return value


def _fractions(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("is a boolean: expected a fraction between 0 and 1, or a list of them")
    return _as_list(value)


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


NotBool = BeforeValidator(_not_bool)
Fraction = Annotated[float, AfterValidator(_fraction), NotBool]
Fractions = Annotated[list[Fraction], BeforeValidator(_fractions)]
PositiveInt = Annotated[int, Field(gt=0), NotBool]
NonNegativeInt = Annotated[int, Field(ge=0), NotBool]
NonNegative = Annotated[float, Field(ge=0), NotBool]


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
    limit_usd: Annotated[Decimal, Field(ge=0), NotBool] | None = None
    limit_tokens: NonNegativeInt | None = None
    limit_calls: NonNegativeInt | None = None
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
    store_timeout: Annotated[float, Field(gt=0), NotBool] = 0.05
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
    *,
    import_hooks: bool = False,
) -> CostwardenConfig:
    """Load and validate the configuration.

    ``source`` is a path to a YAML file, a dict in the file's format, a config already loaded, or
    None: then ``COSTWARDEN_CONFIG`` names the file, or ``./costwarden.yaml`` is used if it exists,
    or the defaults (no budgets). With ``import_hooks`` the ``hooks`` are imported too, as the
    budget processor does at start-up (``costwarden check``). Raises :class:`ConfigError` listing
    every problem found.
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
        return _validate(source, import_hooks=import_hooks)
    return _validate(_read_yaml(Path(source)), origin=str(source), import_hooks=import_hooks)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, line: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.first, self.line = key, first, line


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML would keep the last one
    silently: a second ``budgets:`` would drop every budget of the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` overrides on purpose
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: the base class says so
                continue
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): "
            "save the configuration as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except _DuplicateKey as exc:
        raise ConfigError(
            f"{path}: line {exc.line}: key {exc.key!r} is given twice in one mapping (first at line "
            f"{exc.first}): expected each key once (YAML would silently keep only the last)"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return {} if data is None else data


def _validate(data: Any, origin: str | None = None, *, import_hooks: bool = False) -> CostwardenConfig:
    """Validate ``data``, collecting the problems of every stage (schema, budget names, prices,
    downgrade targets, hooks) before raising, so that one run lists them all."""
    prefix = f"{origin}: " if origin else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix}the configuration must be a mapping of keys, not {type(data).__name__}")
    problems: list[str] = []
    config = None
    try:
        config = CostwardenConfig.model_validate(dict(data))
    except ValidationError as exc:
        by_key: dict[tuple[Any, ...], str] = {}
        for err in exc.errors():  # a union reports once per branch: keep the first per key
            by_key.setdefault(tuple(p for p in err["loc"] if _in_path(p)), _describe(err))
        problems += by_key.values()
    problems += _duplicate_names(data.get("budgets"))
    problems += _price_problems(data.get("prices"), data.get("budgets"))
    if import_hooks:
        problems += _hook_problems(data.get("hooks"))
    if problems or config is None:
        raise ConfigError([prefix + p for p in dict.fromkeys(problems)])  # each once, in order
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
        if isinstance(value, Mapping) or _holds_objects(value):  # the key is enough to find it
            return f"{path}: {message}"
        return f"{path}: {_show(value)} {message}"
    if kind == "literal_error":
        expected = message.removeprefix("Input should be ")
        return f"{path}: {_show(value)} is not one of {expected}"
    return f"{path}: {_show(value)} is not valid: {message[0].lower() + message[1:]}"


def _holds_objects(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(item, Mapping | list) for item in value)


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
    if isinstance(value, bool):
        return "true" if value else "false"  # as written in YAML
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: ..." for k in value) + "}"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _duplicate_names(budgets: Any) -> list[str]:
    """Budget names given twice, checked on the raw list so that a bad budget elsewhere does not
    hide them."""
    if not isinstance(budgets, list):
        return []
    names = [b.get("name") for b in budgets if isinstance(b, Mapping) and isinstance(b.get("name"), str)]
    repeated = dict.fromkeys(name for name in names if names.count(name) > 1)
    return [f"budgets: two budgets are named {name!r}: names must be unique" for name in repeated]


def _price_problems(prices: Any, budgets: Any) -> list[str]:
    """Every price override the price book refuses, and every downgrade (of a budget that is valid
    itself) to a model with no known price: it could not be costed."""
    from costwarden.pricing import PriceBook, check_overrides

    if not isinstance(prices, Mapping):
        prices = {}
    overrides = {k: v for k, v in prices.items() if isinstance(k, str) and isinstance(v, Mapping)}
    valid, problems = check_overrides(overrides)
    book = PriceBook({k: v for k, v in overrides.items() if k.lower() in valid})
    for i, raw in enumerate(budgets if isinstance(budgets, list) else []):
        try:
            budget = BudgetConfig.model_validate(raw)
        except ValidationError:
            continue  # its own problems are reported already
        problems += _unpriced_downgrade(i, budget, book)
    return problems


def _unpriced_downgrade(index: int, budget: BudgetConfig, book: Any) -> list[str]:
    if budget.downgrade is None:
        return []
    provider = _exact(budget.match.get("provider"))
    to = budget.downgrade.to
    targets = [("", to)] if isinstance(to, str) else [(f".{k}", v) for k, v in to.items()]
    return [
        f"budgets[{index}].downgrade.to{suffix}: {model!r} has no known price: "
        "expected a model in the price database or in prices:"
        for suffix, model in targets
        if not book.knows(model, provider)
    ]


def _hook_problems(hooks: Any) -> list[str]:
    """Hooks that cannot be imported, as the budget processor would refuse them at start-up."""
    from costwarden.processor._alerts import resolve_hook

    if not isinstance(hooks, Mapping):
        return []
    reference = hooks.get("on_alert")
    if not isinstance(reference, str) or not re.fullmatch(r"[\w.]+:[\w.]+", reference):
        return []  # the schema reports it
    try:
        resolve_hook(reference, "hooks.on_alert")
    except ConfigError as exc:
        return exc.problems
    return []


def _exact(values: list[str] | None) -> str | None:
    if values and len(values) == 1 and not any(c in values[0] for c in "*?["):
        return values[0]
    return None
