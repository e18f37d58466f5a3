"""``costwarden.cheapest()``: the cheapest model that fits, from the price data, declared capabilities,
context windows and the budgets left, spent down by real openai SDK calls against the fake provider."""

from __future__ import annotations

import socket
from decimal import Decimal
from pathlib import Path

import pytest

import costwarden
from costwarden import NoModelFits, attribute, cheapest
from costwarden import semconv as sc
from costwarden.config import ConfigError
from costwarden.instrumentation._usage import estimate_tokens, input_token_bound
from costwarden.pricing import get_price_book
from tests._apps import run_app

MESSAGES = [{"role": "user", "content": "Summarise the quarterly numbers in one line."}]


def _estimate(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    prices = get_price_book().prices(model)
    assert prices is not None
    return prices.estimate(input_tokens, output_tokens)


def test_picks_the_cheapest_by_the_published_prices():
    route = cheapest(["gpt-4o", "gpt-4o-mini", "gpt-4.1"], input_tokens=1000, output_tokens=200)

    assert route.model == "gpt-4o-mini"
    assert route.provider == "openai"
    assert route.estimated_cost == _estimate("gpt-4o-mini", 1000, 200)
    assert [q.model for q in route.quotes] == ["gpt-4o", "gpt-4o-mini", "gpt-4.1"]
    assert route.quotes[0].estimated_cost == _estimate("gpt-4o", 1000, 200)
    assert route.rejected == {}
    assert route.remaining_usd is None  # nothing installed, so no budget


def test_prompt_is_estimated_as_admission_estimates_it():
    route = cheapest(["gpt-4o-mini"], prompt=MESSAGES, output_tokens=50)
    assert route.estimated_cost == _estimate("gpt-4o-mini", estimate_tokens(MESSAGES), 50)


def test_capability_from_the_argument_rejects_models_without_it():
    route = cheapest(
        ["gpt-4o-mini", "gpt-4o"],
        capability="vision",
        capabilities={"gpt-4o": ["vision", "tools"], "gpt-4o-mini": ["tools"]},
        input_tokens=10,
    )
    assert route.model == "gpt-4o"
    assert route.rejected == {"gpt-4o-mini": "lacks capability 'vision' (has: tools)"}


def test_capabilities_declared_in_the_configuration(budgets):
    budgets(
        {
            "models": {
                "gpt-4o": {"capabilities": ["reasoning", "tools"]},
                "claude-3-5-haiku-latest": {"capabilities": "tools"},
            }
        }
    )
    route = cheapest(["claude-3-5-haiku-latest", "gpt-4o"], capability=["reasoning", "tools"], input_tokens=5)
    assert route.model == "gpt-4o"
    assert "lacks capability 'reasoning'" in route.rejected["claude-3-5-haiku-latest"]


def test_context_window_from_the_price_database_and_the_configuration(budgets):
    route = cheapest(["gpt-4o-mini", "gemini-2.5-flash"], input_tokens=300_000, output_tokens=1000)
    assert route.model == "gemini-2.5-flash"
    assert route.rejected == {"gpt-4o-mini": "301000 tokens do not fit its 128000-token context window"}

    budgets({"models": {"gemini-2.5-flash": {"context_window": 200_000}}})
    with pytest.raises(NoModelFits) as raised:
        cheapest(["gpt-4o-mini", "gemini-2.5-flash"], input_tokens=300_000, output_tokens=1000)
    assert "gemini-2.5-flash: 301000 tokens do not fit its 200000-token context window" in str(raised.value)


def test_nothing_fits_names_every_candidate_and_why():
    with pytest.raises(NoModelFits) as raised:
        cheapest(
            ["gpt-4o", "no-such-model-xyz"],
            capability="audio",
            capabilities={"gpt-4o": ["vision"]},
            input_tokens=10,
        )
    assert raised.value.reasons == {
        "gpt-4o": "lacks capability 'audio' (has: vision)",
        "no-such-model-xyz": "no price known (add it under prices: in costwarden.yaml)",
    }
    assert str(raised.value).startswith("no candidate model fits: gpt-4o: lacks capability 'audio'")


def test_max_cost_per_call():
    with pytest.raises(NoModelFits, match=r"gpt-4o: estimated \$0\.012500 is above max_cost_usd \$0\.01"):
        cheapest(["gpt-4o"], input_tokens=1000, output_tokens=1000, max_cost_usd="0.01")


def test_prices_from_the_configuration_are_routed_on(budgets):
    budgets({"prices": {"my-finetune": {"input": 0.01, "output": 0.02}}})
    route = cheapest(["gpt-4o-mini", "my-finetune"], input_tokens=100, output_tokens=100)
    assert route.model == "my-finetune"
    assert route.estimated_cost == Decimal("0.000003")


def test_spent_budget_moves_the_route_to_the_next_model(budgets, fake, openai_client):
    pool = {"name": "mini-pool", "match": {"model": "gpt-4o-mini"}, "limit_calls": 2}
    telemetry = budgets({"budgets": [pool]})
    chosen = []
    for _ in range(4):
        route = cheapest(["gpt-4o-mini", "gpt-4o"], prompt=MESSAGES, output_tokens=20)
        openai_client.chat.completions.create(model=route.model, messages=MESSAGES, max_tokens=20)
        chosen.append(route.model)

    assert chosen == ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o", "gpt-4o"]
    assert [r.model for r in fake.requests] == chosen
    assert route.rejected == {"gpt-4o-mini": "budget 'mini-pool' has no calls left"}
    decisions = [s.attributes.get(sc.COSTWARDEN_BUDGET_DECISION) for s in telemetry.spans()]
    assert "veto" not in decisions


def test_per_agent_usd_budget_is_spent_down_by_real_calls(budgets, fake, openai_client):
    limit = Decimal("0.0002")
    processor = budgets(
        {"budgets": [{"name": "per-agent", "per": ["agent"], "limit_usd": str(limit)}]}
    ).processor
    candidates = ["gpt-4o-mini", "gpt-4o"]
    with attribute(agent="researcher"):
        first = cheapest(candidates, prompt=MESSAGES, output_tokens=100)
        assert first.remaining_usd == limit
        openai_client.chat.completions.create(model=first.model, messages=MESSAGES, max_tokens=100)
        spent = next(r.spent for r in processor.status() if r.scope == {"agent": "researcher"})
        second = cheapest(candidates, prompt=MESSAGES, output_tokens=100)
        assert second.remaining_usd == limit - spent
        assert second.model == "gpt-4o-mini"
        assert "budget 'per-agent' (agent=researcher) has $" in second.rejected["gpt-4o"]

        def spend_until_nothing_fits() -> None:
            for _ in range(1000):
                route = cheapest(candidates, prompt=MESSAGES, output_tokens=100)
                openai_client.chat.completions.create(model=route.model, messages=MESSAGES, max_tokens=100)

        with pytest.raises(NoModelFits) as raised:
            spend_until_nothing_fits()
        assert set(raised.value.reasons) == {"gpt-4o-mini", "gpt-4o"}
        assert all("budget 'per-agent' (agent=researcher)" in why for why in raised.value.reasons.values())

    with attribute(agent="writer"):  # another agent's counter is untouched
        assert cheapest(candidates, prompt=MESSAGES, output_tokens=100).remaining_usd == limit


def test_agent_of_a_framework_span_is_seen(budgets, fake, openai_client):
    only = {"name": "planner-only", "match": {"agent": "planner"}, "limit_calls": 1}
    telemetry = budgets({"budgets": [only]})
    tracer = telemetry.tracer_provider.get_tracer("some.agent.framework")
    with tracer.start_as_current_span("invoke_agent planner", attributes={sc.GEN_AI_AGENT_NAME: "planner"}):
        assert cheapest(["gpt-4o-mini"], input_tokens=10).model == "gpt-4o-mini"
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(NoModelFits, match="budget 'planner-only' has no calls left"):
            cheapest(["gpt-4o-mini"], input_tokens=10)
    assert cheapest(["gpt-4o-mini"], input_tokens=10).model == "gpt-4o-mini"


def test_provider_budgets_apply_to_the_candidates_provider(budgets):
    budgets({"budgets": [{"name": "no-anthropic", "match": {"provider": "anthropic"}, "limit_usd": 0}]})
    route = cheapest(["claude-3-5-haiku-latest", "gpt-4o"], input_tokens=10, output_tokens=10)
    assert route.model == "gpt-4o"
    assert route.quotes[0].provider == "anthropic"
    assert "budget 'no-anthropic' has $0.000000 left" in route.rejected["claude-3-5-haiku-latest"]
    with pytest.raises(NoModelFits, match="budget 'no-anthropic'"):  # the provider given, not guessed
        cheapest([("gpt-4o", "anthropic")], input_tokens=10, output_tokens=10)


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("fail", ["open", "closed"])
def test_a_store_that_is_down_follows_the_fail_mode(budgets, fail):
    budgets(
        {
            "store": f"redis://127.0.0.1:{_unused_port()}/0",
            "fail": fail,
            "budgets": [{"name": "b", "limit_usd": 1}],
        }
    )
    if fail == "open":
        assert cheapest(["gpt-4o-mini"], input_tokens=10).model == "gpt-4o-mini"
    else:
        with pytest.raises(NoModelFits, match="the budget store is unavailable"):
            cheapest(["gpt-4o-mini"], input_tokens=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"candidates": []}, "no candidates given"),
        ({"candidates": [""]}, "candidate '' is not a model name"),
        ({"candidates": [("gpt-4o",)]}, r"\('gpt-4o',\) is not a model name or a \(model, provider\)"),
        ({"candidates": ["gpt-4o"], "prompt": "x", "input_tokens": 1}, "give prompt or input_tokens"),
        ({"candidates": ["a"], "capabilities": {"a": "x"}}, r"capabilities\['a'\] is a string"),
        ({"candidates": ["gpt-4o"], "input_tokens": -100000}, "input_tokens -100000 is not a number"),
        ({"candidates": ["gpt-4o"], "input_tokens": "1000"}, "input_tokens '1000' is not a number"),
        ({"candidates": ["gpt-4o"], "output_tokens": -5}, "output_tokens -5 is not a number"),
        ({"candidates": ["gpt-4o"], "max_cost_usd": "cheap"}, "max_cost_usd 'cheap' is not a number"),
        ({"candidates": ["gpt-4o"], "max_cost_usd": float("nan")}, "max_cost_usd nan is not a number"),
        ({"candidates": ["gpt-4o"], "capability": 3}, "capability 3 is not a name"),
    ],
)
def test_bad_arguments_name_what_is_wrong(kwargs, message):
    candidates = kwargs.pop("candidates")
    with pytest.raises(ValueError, match=message):
        cheapest(candidates, **kwargs)


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (
            {"gpt-4o": {"capabilities": ["has space"]}},
            r"models\.gpt-4o\.capabilities\[0\]: 'has space' is not a capability name",
        ),
        ({"gpt-4o": {"context_window": 0}}, r"models\.gpt-4o\.context_window"),
        ({"gpt-4o": {"capabilites": ["tools"]}}, r"models\.gpt-4o\.capabilites"),
    ],
)
def test_bad_models_configuration_names_the_key(models, message):
    from costwarden.config import load_config

    with pytest.raises(ConfigError, match=message):
        load_config({"models": models})


def test_route_is_part_of_the_public_api():
    assert costwarden.cheapest is cheapest
    assert issubclass(costwarden.NoModelFits, LookupError)


@pytest.mark.parametrize("instrument", [False, True], ids=["script", "opentelemetry-instrument"])
def test_routing_example_moves_down_the_price_list_as_budgets_run_out(fake, tmp_path, instrument):
    example = Path(__file__).resolve().parent.parent / "examples" / "routing.py"
    env = {
        "OPENAI_BASE_URL": fake.openai_base_url,
        "OPENAI_API_KEY": "test",
        "COSTWARDEN_CONFIG": str(example.with_name("routing.yaml")),
    }
    done = run_app(example, tmp_path, env, instrument=instrument, clear=("OPENAI_",))

    assert done.returncode == 0, done.stderr
    routed = [line.split()[:4] for line in done.stdout.splitlines() if " -> " in line]
    assert routed == [
        ["researcher", "look-up", "->", "gpt-4o-mini"],
        ["researcher", "analysis", "->", "gpt-4.1-mini"],
        ["writer", "draft", "->", "gpt-4o-mini"],
        ["researcher", "analysis", "->", "gpt-4.1-mini"],
        ["researcher", "analysis", "->", "gpt-4o"],  # the cheap reasoning model's quota is spent
    ]
    assert [r.model for r in fake.requests] == [row[3] for row in routed]
    skipped = [line for line in done.stdout.splitlines() if "skipped" in line]
    assert len(skipped) == 1
    assert "gpt-4o: budget 'per-agent' (agent=researcher) has $" in skipped[0]
    assert "gpt-4.1-mini: budget 'gpt-4.1-mini-quota' has no calls left" in skipped[0]
    assert "  researcher   $" in done.stdout
    assert "4 calls  0 vetoed" in done.stdout


def test_strict_budgets_are_quoted_as_admission_reserves(budgets):
    """With strict budgets admission reserves the worst case: routing quotes that, so it does not
    pick a model the budget then vetoes."""
    budgets({"strict": True, "budgets": [{"name": "cap", "limit_usd": 0.002}]})
    prompt = [{"role": "user", "content": "word " * 400}]
    with pytest.raises(NoModelFits, match="cap"):
        cheapest(["gpt-4o"], prompt=prompt, output_tokens=50)
    route = cheapest(["gpt-4o", "gpt-4o-mini"], prompt=prompt, output_tokens=50)
    assert route.model == "gpt-4o-mini"
    book = get_price_book()
    bound = input_token_bound(prompt)
    assert route.estimated_cost == book.prices("gpt-4o-mini", None).worst_case(bound, 50)


def test_candidates_sharing_a_model_name_are_each_named(budgets):
    budgets(
        {
            "budgets": [
                {"name": "azure-quota", "match": {"provider": "azure.ai.openai"}, "limit_calls": 0},
                {"name": "openai-quota", "match": {"provider": "openai"}, "limit_calls": 0},
            ]
        }
    )
    with pytest.raises(NoModelFits) as raised:
        cheapest([("gpt-4o", "openai"), ("gpt-4o", "azure.ai.openai")], input_tokens=10)
    assert set(raised.value.reasons) == {"gpt-4o (openai)", "gpt-4o (azure.ai.openai)"}
    assert "openai-quota" in raised.value.reasons["gpt-4o (openai)"]
