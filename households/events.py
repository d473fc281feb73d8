"""Level changes as events: other packages subscribe without this one knowing them.

A package that reacts to need-level changes (credits, routing priority) registers a coroutine
when its ``tasks`` module is imported::

    from households.events import LevelChanged, on_level_changed

    @on_level_changed
    async def regrant_credits(change: LevelChanged) -> None: ...

The change is written to the household history, and an outbox message sent in the same
transaction; the ``households.tasks.level_changed`` actor then calls every subscriber.  A
subscriber may see the same change twice (the queue delivers at least once): it keys its
effect by ``change.event_id``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

Subscriber = Callable[["LevelChanged"], Awaitable[None]]


@dataclass(frozen=True)
class LevelChanged:
    """A household's level in force changed (``old_level`` is None when it had none)."""

    event_id: int
    household_id: int
    community_id: int
    old_level: int | None
    new_level: int | None
    cause: str  # the history kind: level_computed, level_override, override_ended
    at: datetime


_subscribers: list[Subscriber] = []


def on_level_changed(subscriber: Subscriber) -> Subscriber:
    """Call ``subscriber`` for every level change (usable as a decorator); registering twice is a no-op."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)
    return subscriber


def remove_subscriber(subscriber: Subscriber) -> None:
    if subscriber in _subscribers:
        _subscribers.remove(subscriber)


def subscribers() -> list[Subscriber]:
    return list(_subscribers)
