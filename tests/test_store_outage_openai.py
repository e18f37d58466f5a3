"""A shared Redis store killed and restarted mid-run, seen from the app: real openai SDK calls under
`fail: open` (calls go on, spend is recorded once the store is back) and `fail: closed` (calls are
vetoed before anything is sent, with a reason that says why)."""

from __future__ import annotations

import logging
import time

import pytest

from costwarden import BudgetExceeded, attribute
from tests._redis import RedisServer

MESSAGES = [{"role": "user", "content": "status?"}]


def _config(redis: RedisServer, fail: str) -> dict:
    return {
        "store": redis.url,
        "fail": fail,
        "store_timeout": 0.2,
        "budgets": [{"name": "daily", "limit_usd": 10, "period": "day"}],
    }


def _call(client) -> None:
    with attribute(run_id="outage-run"):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)


def _spent(telemetry) -> float:
    (row,) = [r for r in telemetry.processor.status() if r.budget == "daily" and r.unit == "usd"]
    return float(row.spent)


def _until(predicate, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:  # the store is still coming back
            pass
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_fail_open_lets_calls_through_and_records_them_after(
    budgets, fake, openai_client, private_redis, caplog
):
    telemetry = budgets(_config(private_redis, "open"))
    _call(openai_client)
    before = _spent(telemetry)
    assert before > 0

    private_redis.kill()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            _call(openai_client)  # allowed: fail open
    assert len(fake.requests) == 4
    assert any("store" in r.getMessage().lower() for r in caplog.records), "the outage is reported"

    private_redis.start()  # same port, empty: spend made while down is flushed from the queue
    _call(openai_client)
    _until(lambda: _spent(telemetry) > 0)
    span_costs = sum(s.attributes.get("gen_ai.usage.cost.amount", 0) for s in telemetry.llm_spans())
    # the restarted server lost what was there before the crash (no persistence in the test's redis);
    # everything spent from the outage on is counted: the three calls made while down and the one after.
    assert _spent(telemetry) == pytest.approx(span_costs - before, rel=1e-6)


def test_fail_closed_vetoes_without_sending_and_recovers(budgets, fake, openai_client, private_redis):
    telemetry = budgets(_config(private_redis, "closed"))
    _call(openai_client)

    private_redis.kill()
    sent = len(fake.requests)
    with pytest.raises(BudgetExceeded) as raised:
        _call(openai_client)
    assert raised.value.reason == "store_unavailable"
    assert len(fake.requests) == sent, "nothing is sent while the store cannot be reached"
    vetoed = telemetry.llm_spans()[-1]
    assert vetoed.attributes["costwarden.budget.decision"] == "veto"

    private_redis.start()
    _until(lambda: (_call(openai_client), True)[1])
    assert len(fake.requests) == sent + 1


@pytest.mark.parametrize("fail", ["closed", "open"])
@pytest.mark.parametrize(
    "budget",
    [
        {"downgrade": {"at": 0.7, "to": "gpt-4o-mini"}},  # reads the fill level before reserving
        {"max_repeats": 5},  # records the request before reserving
        {"refuse_new_work_at": 0.5},  # records the run after reserving
        {"alert_at": [0.0001]},  # records the alert after reserving
    ],
    ids=["downgrade", "max_repeats", "refuse_new_work", "alert"],
)
def test_every_store_call_of_admission_follows_the_fail_policy(
    budgets, fake, openai_client, private_redis, budget, fail, caplog
):
    """Not only the reservation: a store that cannot be reached at any step of admission vetoes under
    `fail: closed` (nothing sent) and lets the call through under `fail: open`, never as an error."""
    config = _config(private_redis, fail)
    config["budgets"] = [{"name": "daily", "limit_usd": 10, "period": "day", **budget}]
    telemetry = budgets(config)
    with attribute(run_id="first-run"):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
    private_redis.kill()
    sent = len(fake.requests)
    with caplog.at_level(logging.WARNING):
        if fail == "closed":
            with pytest.raises(BudgetExceeded) as raised:
                _call(openai_client)
            assert raised.value.reason == "store_unavailable"
            assert len(fake.requests) == sent, "nothing is sent"
        else:
            _call(openai_client)
            assert len(fake.requests) == sent + 1
            assert telemetry.llm_spans()[-1].attributes["costwarden.budget.decision"] == "allow"
    assert telemetry.processor.in_flight() == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no internal error logged"
