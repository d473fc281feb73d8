"""The order state machine: the one table of allowed moves.

``submitted → routing → offered → accepted → in_service → completed → confirmed``; a declined
or expired offer sends the order back to ``routing``; ``escalated`` when routing gives up (a
steward dispatches it, back to ``routing`` or straight to ``accepted``); ``cancelled`` from any
state before ``in_service``; ``failed`` when the worker could not serve (no-show) — credits are
released.  Everything that changes an order's state asks :func:`check` first, and
``orders.services`` writes the move as a conditional UPDATE plus an order event.
"""

from __future__ import annotations

from enum import StrEnum

from marketplace.errors import Conflict
from marketplace.i18n import N_, gettext


class State(StrEnum):
    SUBMITTED = "submitted"
    ROUTING = "routing"
    OFFERED = "offered"
    ESCALATED = "escalated"
    ACCEPTED = "accepted"
    IN_SERVICE = "in_service"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    FAILED = "failed"


S = State

# action → (states it may start from, the state it leads to)
MOVES: dict[str, tuple[frozenset[State], State]] = {
    "route": (frozenset({S.SUBMITTED, S.OFFERED}), S.ROUTING),
    "offer": (frozenset({S.ROUTING}), S.OFFERED),
    "escalate": (frozenset({S.SUBMITTED, S.ROUTING, S.OFFERED}), S.ESCALATED),
    "reroute": (frozenset({S.ESCALATED}), S.ROUTING),
    "accept": (frozenset({S.OFFERED, S.ESCALATED}), S.ACCEPTED),
    "start": (frozenset({S.ACCEPTED}), S.IN_SERVICE),
    "complete": (frozenset({S.IN_SERVICE}), S.COMPLETED),
    "confirm": (frozenset({S.COMPLETED}), S.CONFIRMED),
    "cancel": (frozenset({S.SUBMITTED, S.ROUTING, S.OFFERED, S.ESCALATED, S.ACCEPTED}), S.CANCELLED),
    "fail": (frozenset({S.ACCEPTED, S.IN_SERVICE}), S.FAILED),
}

# States an order does not leave.
FINAL = frozenset({S.CONFIRMED, S.CANCELLED, S.FAILED})
# States in which the order holds a provider's capacity.
HOLDS_CAPACITY = frozenset({S.ACCEPTED, S.IN_SERVICE})
# States in which the order's credits are still reserved.
HOLDS_CREDITS = frozenset({S.SUBMITTED, S.ROUTING, S.OFFERED, S.ESCALATED, S.ACCEPTED, S.IN_SERVICE})

LABELS: dict[State, str] = {
    S.SUBMITTED: N_("Submitted"),
    S.ROUTING: N_("Finding a provider"),
    S.OFFERED: N_("Offered to a provider"),
    S.ESCALATED: N_("Waiting for the steward"),
    S.ACCEPTED: N_("Accepted"),
    S.IN_SERVICE: N_("Being served"),
    S.COMPLETED: N_("Done, waiting for confirmation"),
    S.CONFIRMED: N_("Confirmed"),
    S.CANCELLED: N_("Cancelled"),
    S.FAILED: N_("Not served"),
}


class IllegalMove(Conflict):
    """The order is not in a state that allows this action (answered as 409)."""


def can(action: str, state: str) -> bool:
    """Whether ``action`` is allowed from ``state``."""
    sources, _ = MOVES[action]
    return state in sources


def check(action: str, state: str) -> State:
    """The state ``action`` leads to from ``state``; :class:`IllegalMove` when not allowed."""
    sources, target = MOVES[action]
    if state not in sources:
        raise IllegalMove(
            N_("This cannot be done now: the order is “%(state)s”. Reload the page to see where it stands."),
            state=gettext(LABELS[State(state)]),
        )
    return target
