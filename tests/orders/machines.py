"""Running a Hypothesis state machine whose steps need the test's event loop (where the pool lives)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test


async def run_machine(
    machine_for: Callable[[Any, Callable[[Awaitable[Any]], Any]], type[RuleBasedStateMachine]],
    world: Any,
    **options: Any,
) -> type[RuleBasedStateMachine]:
    """Build the machine with ``machine_for(world, run)`` and run it in a thread; ``run`` hands a
    coroutine (or a Piccolo query) to the test's loop and waits for it.  ``options`` go to
    Hypothesis' settings.  Returns the machine class."""
    loop = asyncio.get_running_loop()

    def run(awaitable: Awaitable[Any]) -> Any:
        async def wait() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wait(), loop).result(timeout=300)

    machine = machine_for(world, run)
    await asyncio.to_thread(
        run_state_machine_as_test,
        machine,
        settings=settings(deadline=None, suppress_health_check=list(HealthCheck), database=None, **options),
    )
    return machine
