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

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


# -- erasure ---------------------------------------------------------------------------------------

ErasureSubscriber = Callable[["Erasure"], Awaitable[None]]
ERASED = "***"


@dataclass(frozen=True)
class Erasure:
    """A household's personal data is being erased: what to look for, and what to put instead.

    ``names`` maps each personal value that is a person's name to the pseudonym that replaces it;
    every other personal value (ID numbers, phones, the address, health notes, birth dates) is
    replaced by ``***``.  Subscribers run inside the erasing transaction.
    """

    household_id: int
    code: str  # the household code before erasure
    pseudonym: str
    member_ids: tuple[int, ...]
    user_ids: tuple[int, ...]
    phones: tuple[str, ...]
    names: dict[str, str]
    values: tuple[str, ...]

    def _replacements(self) -> list[tuple[str, str]]:
        pairs = [*self.names.items(), *((v, ERASED) for v in self.values)]
        # Longest first, so that a value holding another (a phone in an ID number) goes whole.
        return sorted(((old, new) for old, new in pairs if old), key=lambda pair: -len(pair[0]))

    def scrub(self, text: str) -> str:
        """``text`` with every personal value replaced."""
        for old, new in self._replacements():
            text = text.replace(old, new)
        return text

    def scrub_json(self, value: Any) -> Any:
        """A JSON value (or its text) with every personal value in its strings replaced."""
        if isinstance(value, str):
            try:
                loaded = json.loads(value)
            except ValueError:
                return self.scrub(value)
            if not isinstance(loaded, dict | list):
                return self.scrub(value)
            scrubbed = self.scrub_json(loaded)
            return value if scrubbed == loaded else json.dumps(scrubbed, ensure_ascii=False)
        if isinstance(value, dict):
            return {self.scrub(str(k)): self.scrub_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub_json(v) for v in value]
        return value

    def searched(self) -> list[str]:
        """Every personal value, to look for in texts."""
        return sorted({old for old, _ in self._replacements()})


_erasure_subscribers: list[ErasureSubscriber] = []


def on_household_erased(subscriber: ErasureSubscriber) -> ErasureSubscriber:
    """Call ``subscriber`` when a household is erased, to remove what another package keeps of it."""
    if subscriber not in _erasure_subscribers:
        _erasure_subscribers.append(subscriber)
    return subscriber


def erasure_subscribers() -> list[ErasureSubscriber]:
    return list(_erasure_subscribers)
