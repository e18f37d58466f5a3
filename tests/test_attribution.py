"""attribute(): nesting, decorators, isolation between threads and tasks, and W3C baggage."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading

import pytest
from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context

from costwarden import attribute, current_attribution
from costwarden._attribution import attribution_attributes


def test_nesting_inner_overrides_outer_and_none_keeps_outer():
    with attribute(workflow="brief", run_id="r-1", agent="planner"):
        with attribute(agent="writer", task="t-9"):
            assert current_attribution() == {
                "workflow": "brief",
                "run_id": "r-1",
                "agent": "writer",
                "task": "t-9",
            }
        assert current_attribution() == {"workflow": "brief", "run_id": "r-1", "agent": "planner"}
    assert current_attribution() == {}


def test_span_attribute_names():
    with attribute(agent="a", workflow="w", run_id="r", user="u", task="t"):
        assert attribution_attributes() == {
            "gen_ai.agent.name": "a",
            "gen_ai.workflow.name": "w",
            "gen_ai.conversation.id": "r",
            "user.id": "u",
            "costwarden.task.id": "t",
        }


def test_decorator_on_sync_and_async_functions():
    @attribute(agent="sync-agent")
    def sync_work():
        return dict(current_attribution())

    @attribute(agent="async-agent")
    async def async_work():
        await asyncio.sleep(0)
        return dict(current_attribution())

    assert sync_work() == {"agent": "sync-agent"}
    assert asyncio.run(async_work()) == {"agent": "async-agent"}
    assert current_attribution() == {}


def test_decorator_on_generator_functions_attributes_each_step_only():
    """A decorated generator runs attributed while it runs, not while its caller does; values sent
    and exceptions thrown in reach it, and closing it runs its cleanup attributed too."""
    seen = []

    @attribute(agent="streamer", run_id="g-1")
    def steps():
        try:
            got = yield dict(current_attribution())
            seen.append(got)
            try:
                yield dict(current_attribution())
            except ValueError as exc:
                seen.append(("thrown", str(exc), dict(current_attribution())))
                yield "recovered"
            yield "more"
        finally:
            seen.append(("cleanup", dict(current_attribution())))
        return "done"

    expected = {"agent": "streamer", "run_id": "g-1"}
    gen = steps()
    assert current_attribution() == {}, "nothing runs before the first step"
    assert next(gen) == expected
    assert current_attribution() == {}, "the caller between steps is not attributed"
    assert gen.send("hello") == expected
    assert gen.throw(ValueError("boom")) == "recovered"
    gen.close()
    assert seen == ["hello", ("thrown", "boom", expected), ("cleanup", expected)]
    assert list(steps()) == [expected, expected, "more"]

    @attribute(agent="async-streamer")
    async def async_steps():
        for _ in range(2):
            await asyncio.sleep(0)
            yield dict(current_attribution())

    async def consume():
        out = []
        async for item in async_steps():
            out.append((item, dict(current_attribution())))
        return out

    assert asyncio.run(consume()) == [({"agent": "async-streamer"}, {})] * 2


def test_threads_and_tasks_are_isolated():
    seen = {}

    def in_thread(name):
        with attribute(agent=name):
            threading.Event().wait(0.01)
            seen[name] = current_attribution()["agent"]

    threads = [threading.Thread(target=in_thread, args=(f"t{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {f"t{i}": f"t{i}" for i in range(8)}

    async def task(name):
        with attribute(agent=name):
            await asyncio.sleep(0.01)
            return current_attribution()["agent"]

    async def main():
        return await asyncio.gather(*(task(f"a{i}") for i in range(20)))

    assert asyncio.run(main()) == [f"a{i}" for i in range(20)]


def test_invalid_values_are_refused():
    with pytest.raises(ValueError, match="agent"):
        attribute(agent="")
    with pytest.raises(TypeError, match="workflow"):
        attribute(workflow=["not", "a", "string"])  # type: ignore[arg-type]
    assert attribute(run_id=42)._values == {"run_id": "42"}


def test_long_values_are_truncated():
    with attribute(user="u" * 1000):
        assert len(current_attribution()["user"]) == 256


def test_workflow_run_and_user_travel_in_baggage_agent_and_task_do_not():
    headers: dict[str, str] = {}
    with attribute(agent="a", workflow="w", run_id="r", user="u", task="t"):
        propagate.inject(headers)
    ctx = propagate.extract(headers)
    assert baggage.get_all(ctx) == {
        "gen_ai.workflow.name": "w",
        "gen_ai.conversation.id": "r",
        "user.id": "u",
    }
    token = otel_context.attach(ctx)
    try:
        assert current_attribution() == {"workflow": "w", "run_id": "r", "user": "u"}
        with attribute(agent="sub-agent"):
            assert current_attribution() == {
                "workflow": "w",
                "run_id": "r",
                "user": "u",
                "agent": "sub-agent",
            }
    finally:
        otel_context.detach(token)


def test_attribution_crosses_a_process_boundary():
    headers: dict[str, str] = {}
    with attribute(workflow="w-remote", run_id="r-remote", user="u-remote"):
        propagate.inject(headers)
    child = textwrap.dedent(
        """
        import json, sys
        from opentelemetry import context, propagate
        from costwarden import current_attribution
        context.attach(propagate.extract(json.loads(sys.argv[1])))
        print(json.dumps(dict(current_attribution())))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", child, json.dumps(headers)], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == {"workflow": "w-remote", "run_id": "r-remote", "user": "u-remote"}
