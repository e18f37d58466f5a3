"""guard(): a one-client budget on the same processor, through the real openai SDK and the fake
provider."""

from __future__ import annotations

from typing import Any

import pytest

from costwarden import BudgetExceeded, guard
from costwarden import semconv as sc


def test_guard_downgrades_then_kills_only_the_guarded_client(
    budgets: Any, fake: Any, openai_client: Any
) -> None:
    telemetry = budgets({})
    guarded = guard(openai_client, budget=0.0004, downgrade_at=0.3, downgrade_model="gpt-4o-mini", name="tf")
    sent: list[str | None] = []
    error = None
    for _ in range(50):
        try:
            guarded.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hello " * 20}], max_tokens=20
            )
        except BudgetExceeded as exc:
            error = exc
            break
        sent.append(fake.requests[-1].model)
    assert error is not None, "the guard never vetoed"
    assert error.budget == "tf"
    assert "gpt-4o-mini" in sent  # downgraded before the kill
    unguarded = openai_client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert unguarded.model  # the same client outside the guard is not limited
    vetoed = [
        s for s in telemetry.llm_spans() if (s.attributes or {}).get(sc.COSTWARDEN_BUDGET_DECISION) == "veto"
    ]
    assert len(vetoed) == 1


async def test_guard_on_an_async_client_warns_instead_of_killing(
    budgets: Any, async_openai_client: Any
) -> None:
    telemetry = budgets({})
    guarded = guard(async_openai_client, budget=0.00001, on_budget_hit="warn")
    for _ in range(3):
        await guarded.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=5
        )
    decisions = [(s.attributes or {}).get(sc.COSTWARDEN_BUDGET_DECISION) for s in telemetry.llm_spans()]
    assert "warn" in decisions


def test_guard_rejects_an_unpriced_downgrade_model(budgets: Any, openai_client: Any) -> None:
    budgets({})
    with pytest.raises(ValueError, match="no known price"):
        guard(openai_client, budget=1, downgrade_at=0.5, downgrade_model="no-such-model-xyz")


def test_guard_budget_lives_as_long_as_anything_reached_from_the_client(
    budgets: Any, fake: Any, openai_client: Any
) -> None:
    """Keeping only ``with_options(...)`` or ``.chat.completions`` of the guarded client keeps the
    budget; it goes once nothing reached from the guard is left."""
    import gc

    telemetry = budgets({})
    messages = [{"role": "user", "content": "hello " * 20}]
    kept = {
        "sub-client": guard(openai_client, budget=0.0002, name="g-sub").with_options(max_retries=0),
        "resource": guard(openai_client, budget=0.0002, name="g-res").chat.completions,
    }
    gc.collect()
    assert {"g-sub", "g-res"} <= {b.name for b in telemetry.processor.budgets}
    for what, target in kept.items():
        create = target.chat.completions.create if what == "sub-client" else target.create
        with pytest.raises(BudgetExceeded):  # noqa: PT012 - the veto comes after a few calls
            for _ in range(20):
                create(model="gpt-4o", messages=messages, max_tokens=20)
    del create, target
    kept.clear()
    gc.collect()
    assert not {"g-sub", "g-res"} & {b.name for b in telemetry.processor.budgets}
