"""Replay a day of demand in a generated district, through the real services, on a moved clock.

The month's credits are granted first (:func:`orders.settlement.grant_month`).  Then the day runs
as a queue of timed events, the service clock frozen at each one in turn:

- households book (:func:`orders.booking.book`) at times drawn from a morning-peaked curve, the
  service drawn from their need groups; a resident books for a household where someone uses a
  phone, the household's steward (with a written attestation) for one where nobody does;
- the routing messages the booking and the offers write to the outbox are run here, in order of
  their due time, by the functions the actors call (:func:`orders.dispatch.route` and
  :func:`orders.dispatch.expire`): an offer nobody answers expires when the clock reaches it;
- every provider answers its offers by its own habits (how often it accepts, how fast it
  answers, how often it stays silent), drawn once from the seed;
- accepted orders are started, completed and confirmed through :mod:`orders.fulfilment`; a few
  are cancelled by the household before a provider takes them, a few are not served (no-show).

Other messages (notifications) stay in the outbox for a worker.  Everything random comes from
one ``random.Random(seed)`` and events are taken in a fixed order, so the same seed in the same
district gives the same outcome.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from households.tables import Household, Member
from marketplace import clock
from marketplace.auth import LinkKind, Principal, Role
from marketplace.errors import DomainError
from marketplace.tables import Category, OutboxMessage
from orders import booking, dispatch, fulfilment, settlement
from orders.lifecycle import FINAL, State
from orders.tables import CreditEntry, Offer, Order
from providers.tables import Offering, Provider

ROUTING_ACTORS: dict[str, Callable[[int], Any]] = {
    "orders.tasks.route_order": dispatch.route,
    "orders.tasks.route_order_urgent": dispatch.route,
    "orders.tasks.expire_offer": dispatch.expire,
    "orders.tasks.expire_offer_urgent": dispatch.expire,
}

# How often a household of each level books, relative to the others.
LEVEL_WEIGHT = {1: 3.0, 2: 2.0, 3: 1.0}
# How long ahead of its service a household books, by level (minutes).
LEAD_MINUTES = {1: (30, 90), 2: (60, 240), 3: (120, 480)}
WINDOW = timedelta(hours=2)
# Services every household asks for now and then, and what each need group adds.
BASE_NEED = {
    "errands": 2.0,
    "cleaning": 2.0,
    "medicine": 2.0,
    "meals": 2.0,
    "companionship": 1.0,
    "hospital_escort": 1.0,
    "haircut": 1.0,
    "bathing": 0.5,
    "home_repair": 0.5,
}
GROUP_NEED = {
    "elderly_alone": {"meals": 3.0, "companionship": 2.0, "cleaning": 1.0, "medicine": 1.0},
    "disabled": {"bathing": 2.0, "errands": 1.0, "hospital_escort": 1.0},
    "serious_illness": {"medicine": 3.0, "hospital_escort": 3.0},
    "child_in_difficulty": {"companionship": 2.0, "errands": 1.0},
    "single_parent": {"errands": 1.0, "cleaning": 1.0, "meals": 1.0},
}
CANCEL_SHARE = 0.02
NO_SHOW_SHARE = 0.01
ATTESTATION = "Nobody in the household uses a phone; the resident asked me in person (simulated)."


@dataclass(frozen=True)
class Habit:
    """How one provider answers offers."""

    accepts: float
    silent: float
    minutes: float
    """The median minutes it takes to answer."""


def habit(rng: random.Random) -> Habit:
    return Habit(
        accepts=rng.uniform(0.55, 0.95), silent=rng.uniform(0.02, 0.25), minutes=rng.uniform(2.0, 25.0)
    )


def booking_minute(rng: random.Random) -> float:
    """Minutes after midnight of a booking: a morning peak, a smaller afternoon one, a few any time."""
    draw = rng.random()
    if draw < 0.55:
        hours = rng.gauss(9.0, 1.2)
    elif draw < 0.85:
        hours = rng.gauss(14.5, 1.5)
    else:
        hours = rng.uniform(7.0, 20.0)
    return 60 * min(21.0, max(6.5, hours))


def need_weights(groups: list[str], available: set[str]) -> tuple[list[str], list[float]]:
    """The services a household with these need groups asks for, with weights (only those offered)."""
    weights = Counter(BASE_NEED)
    for group in groups:
        weights.update(GROUP_NEED.get(group, {}))
    codes = sorted(code for code in weights if code in available)
    return codes, [weights[code] for code in codes]


def percentile(values: list[float], share: float) -> float:
    """The value below which ``share`` of ``values`` fall (nearest rank); NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class Tally:
    """What the replay saw the services answer, counted as it went (checked against the database)."""

    booked: list[int] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    escalated: int = 0
    cancelled: int = 0
    confirmed: int = 0
    failed: int = 0
    offers_answered: Counter[str] = field(default_factory=Counter)


@dataclass
class Outcome:
    """The day as the database has it, to print."""

    seed: int
    day: date
    granted: int
    tally: Tally
    states: Counter[str] = field(default_factory=Counter)
    levels: Counter[int] = field(default_factory=Counter)
    to_accept: dict[int, list[float]] = field(default_factory=dict)
    to_serve: dict[int, list[float]] = field(default_factory=dict)
    escalations: Counter[str] = field(default_factory=Counter)
    offers: Counter[str] = field(default_factory=Counter)
    credits_spent: int = 0
    credit_differences: int = 0
    seconds: float = 0.0

    @property
    def booked(self) -> int:
        return sum(self.states.values())


class _Day:
    """The event queue of one simulated day and the people who act in it."""

    def __init__(self, seed: int, day: date, progress: Callable[[int], None]) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.day = day
        self.progress = progress
        self.start = datetime(day.year, day.month, day.day, tzinfo=clock.local_zone())
        self.events: list[tuple[datetime, int, str, tuple[Any, ...]]] = []
        self.sequence = 0
        self.tally = Tally()
        self.habits: dict[int, Habit] = {}
        self.provider_roles: dict[int, Role] = {}
        self.households: dict[int, dict[str, Any]] = {}
        self.phones: set[int] = set()
        self.durations: dict[int, int] = {}
        self.last_offer = 0
        self.open: set[int] = set()
        self.taken: set[int] = set()

    def at(self, when: datetime, kind: str, *args: Any) -> None:
        self.sequence += 1
        heapq.heappush(self.events, (when, self.sequence, kind, args))

    def close(self, order_id: int) -> None:
        if order_id in self.open:
            self.open.discard(order_id)
            self.progress(1)

    # -- who acts ------------------------------------------------------------------------------

    def household_principal(self, household_id: int) -> Principal:
        """The resident, or the steward for a household where nobody uses a phone."""
        household = self.households[household_id]
        if household_id in self.phones:
            return Principal(
                user_id=None,
                role=Role.RESIDENT,
                links={LinkKind.HOUSEHOLD.value: frozenset({str(household_id)})},
            )
        return Principal(
            user_id=household["steward"],
            role=Role.STEWARD,
            links={LinkKind.COMMUNITY.value: frozenset({str(household["community"])})},
        )

    def provider_principal(self, provider_id: int) -> Principal:
        return Principal(
            user_id=None,
            role=self.provider_roles.get(provider_id, Role.PROVIDER_STAFF),
            links={LinkKind.PROVIDER.value: frozenset({str(provider_id)})},
        )

    # -- setting up --------------------------------------------------------------------------------

    async def load(self, orders: int) -> None:
        rows = await (
            Household.select(
                Household.id, Household.level, Household.groups, Household.community, Household.steward
            )
            .where(
                (Household.status == "active")
                & Household.erased_at.is_null()
                & Household.level.is_in(list(LEVEL_WEIGHT))
            )
            .order_by(Household.id)
        )
        if not rows:
            raise ValueError("the district has no active household with a need level")
        self.households = {row["id"]: row for row in rows}
        self.phones = {
            row["household"]
            for row in await Member.select(Member.household)
            .where(Member.can_use_phone == True)  # noqa: E712 - a SQL comparison
            .distinct()
        }
        available = {
            row["code"]
            for row in await Category.select(Category.code).where(Category.is_active == True)  # noqa: E712
        }
        for provider in await Provider.select(Provider.id, Provider.kind).order_by(Provider.id):
            self.habits[provider["id"]] = habit(self.rng)
            if provider["kind"] == "individual_volunteer":
                self.provider_roles[provider["id"]] = Role.VOLUNTEER
        self.durations = {
            row["id"]: row["duration_minutes"]
            for row in await Offering.select(Offering.id, Offering.duration_minutes)
        }
        last = await Offer.select(Offer.id).order_by(Offer.id, ascending=False).first()
        self.last_offer = last["id"] if last else 0

        ids = list(self.households)
        chosen = self.rng.choices(ids, [LEVEL_WEIGHT[self.households[i]["level"]] for i in ids], k=orders)
        for household_id in chosen:
            household = self.households[household_id]
            groups = [g for g in str(household["groups"] or "").split(",") if g]
            codes, weights = need_weights(groups, available)
            code = self.rng.choices(codes, weights)[0]
            when = self.start + timedelta(minutes=booking_minute(self.rng))
            self.at(when, "book", household_id, code)

    # -- the day -----------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            due = await self._next_routing()
            if not self.events and due is None:
                return
            if due is not None and (not self.events or due <= self.events[0][0]):
                clock.freeze(max(due, clock.now()))
                await self._run_routing(clock.now())
                continue
            when, _, kind, args = heapq.heappop(self.events)
            clock.freeze(when)
            await getattr(self, f"_{kind}")(*args)

    async def _next_routing(self) -> datetime | None:
        row = (
            await OutboxMessage.select(OutboxMessage.due_at)
            .where((OutboxMessage.state == "pending") & OutboxMessage.actor.is_in(list(ROUTING_ACTORS)))
            .order_by(OutboxMessage.due_at)
            .first()
        )
        return row["due_at"] if row else None

    async def _run_routing(self, now: datetime) -> None:
        """Run the routing messages due by ``now``, oldest first, as the actors would; then answer
        the new offers."""
        rows = await OutboxMessage.select(
            OutboxMessage.id, OutboxMessage.actor, OutboxMessage.args, OutboxMessage.due_at
        ).where(
            (OutboxMessage.state == "pending")
            & OutboxMessage.actor.is_in(list(ROUTING_ACTORS))
            & (OutboxMessage.due_at <= now)
        )
        for row in sorted(rows, key=lambda r: (r["due_at"], r["actor"], _args(r["args"]))):
            (target,) = _args(row["args"])
            result = await ROUTING_ACTORS[row["actor"]](int(target))
            await OutboxMessage.delete().where(OutboxMessage.id == row["id"])
            if result == "escalated":
                self.tally.escalated += 1
                self.close(int(target))
        await self._answer_new_offers()

    async def _answer_new_offers(self) -> None:
        offers = await (
            Offer.select(Offer.id, Offer.provider, Offer.offered_at)
            .where((Offer.id > self.last_offer) & (Offer.state == "open"))
            .order_by(Offer.id)
        )
        for offer in offers:
            self.last_offer = max(self.last_offer, offer["id"])
            habit = self.habits.get(offer["provider"]) or Habit(0.7, 0.1, 10.0)
            if self.rng.random() < habit.silent:
                continue  # never answered: the offer expires
            delay = timedelta(minutes=self.rng.lognormvariate(math.log(habit.minutes), 0.6))
            answer = "accept" if self.rng.random() < habit.accepts else "decline"
            self.at(offer["offered_at"] + delay, answer, offer["id"], offer["provider"])

    # -- what people do ----------------------------------------------------------------------------

    async def _book(self, household_id: int, code: str) -> None:
        level = self.households[household_id]["level"]
        low, high = LEAD_MINUTES.get(level, LEAD_MINUTES[3])
        start = clock.now() + timedelta(minutes=self.rng.uniform(low, high))
        principal = self.household_principal(household_id)
        data: dict[str, Any] = {
            "category": code,
            "window_start": start,
            "window_end": start + WINDOW,
            "household_id": household_id,
        }
        if principal.role == Role.STEWARD:
            data |= {"consent_method": booking.Consent.ATTESTATION, "consent_note": ATTESTATION}
        try:
            order = await booking.book(principal, data)
        except DomainError as exc:
            self.tally.refused[exc.code] += 1
            self.progress(1)
            return
        self.tally.booked.append(order["id"])
        self.open.add(order["id"])
        if self.rng.random() < CANCEL_SHARE:
            self.at(
                clock.now() + timedelta(minutes=self.rng.uniform(5, 60)), "cancel", order["id"], household_id
            )

    async def _cancel(self, order_id: int, household_id: int) -> None:
        if order_id not in self.open or order_id in self.taken:
            return  # a provider took it, or it waits for the steward, first
        try:
            await booking.cancel(
                self.household_principal(household_id), order_id, reason="Not needed any more"
            )
        except DomainError:
            return
        self.tally.cancelled += 1
        self.close(order_id)

    async def _accept(self, offer_id: int, provider_id: int) -> None:
        try:
            order = await dispatch.accept(offer_id, self.provider_principal(provider_id))
        except dispatch.CapacityFull:
            self.tally.offers_answered["full"] += 1
            await self._decline(offer_id, provider_id, reason="Fully booked")
            return
        except DomainError:
            self.tally.offers_answered["too_late"] += 1
            return  # expired, lost to another provider, or withdrawn
        self.tally.offers_answered["accepted"] += 1
        self.tally.accepted += 1
        self.taken.add(order["id"])
        begin = max(clock.now(), order["window_start"]) + timedelta(minutes=self.rng.uniform(0, 15))
        self.at(begin, "start", order["id"], provider_id, order["offering"])

    async def _decline(self, offer_id: int, provider_id: int, reason: str = "Not available then") -> None:
        try:
            await dispatch.decline(offer_id, self.provider_principal(provider_id), reason=reason)
        except DomainError:
            self.tally.offers_answered["too_late"] += 1
            return
        self.tally.offers_answered["declined"] += 1

    async def _start(self, order_id: int, provider_id: int, offering_id: int | None) -> None:
        principal = self.provider_principal(provider_id)
        if self.rng.random() < NO_SHOW_SHARE:
            await fulfilment.fail(principal, order_id, note="The worker could not come (simulated)")
            self.tally.failed += 1
            self.close(order_id)
            return
        await fulfilment.check_in(principal, order_id)
        minutes = self.durations.get(offering_id or 0, 60) * self.rng.uniform(0.8, 1.3)
        self.at(clock.now() + timedelta(minutes=minutes), "complete", order_id, provider_id)

    async def _complete(self, order_id: int, provider_id: int) -> None:
        await fulfilment.check_out(self.provider_principal(provider_id), order_id)
        order = await Order.select(Order.household).where(Order.id == order_id).first()
        if order is None:
            raise RuntimeError(f"order {order_id} vanished")
        later = clock.now() + timedelta(minutes=self.rng.uniform(10, 360))
        self.at(later, "confirm", order_id, order["household"])

    async def _confirm(self, order_id: int, household_id: int) -> None:
        rating = self.rng.choices([5, 4, 3, 2], [60, 28, 9, 3])[0]
        await fulfilment.confirm(self.household_principal(household_id), order_id, rating=rating)
        self.tally.confirmed += 1
        self.close(order_id)


def _args(raw: Any) -> list[Any]:
    return list(json.loads(raw) if isinstance(raw, str) else raw)


def default_day() -> date:
    """The next working day (Monday to Friday) after today, local time."""
    day = clock.local_now().date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


async def replay(
    orders: int, seed: int, day: date | None = None, progress: Callable[[int], None] | None = None
) -> Outcome:
    """Replay ``orders`` bookings on ``day`` (the next working day); the outcome as the database has it.

    ``progress`` is called with 1 as each booking comes to rest: refused, confirmed, not served,
    cancelled or escalated.  The clock is frozen while it runs and set back to real time after.
    """
    began = time.perf_counter()
    day = day or default_day()
    sim = _Day(seed, day, progress or (lambda _n: None))
    try:
        clock.freeze(sim.start + timedelta(hours=5))
        month = settlement.month_of(clock.now())
        granted = await settlement.grant_month(month)
        await sim.load(orders)
        await sim.run()
    finally:
        clock.reset()
    outcome = await measure(sim.tally.booked, seed=seed, day=day, granted=granted, tally=sim.tally)
    outcome.seconds = time.perf_counter() - began
    return outcome


async def measure(order_ids: list[int], *, seed: int, day: date, granted: int, tally: Tally) -> Outcome:
    """Read the outcome of the orders ``order_ids`` from the database."""
    from orders import credits

    outcome = Outcome(seed=seed, day=day, granted=granted, tally=tally)
    if not order_ids:
        return outcome
    low, high = min(order_ids), max(order_ids)
    rows = await Order.select(
        Order.id,
        Order.state,
        Order.level,
        Order.submitted_at,
        Order.accepted_at,
        Order.started_at,
        Order.escalation_reason,
    ).where((Order.id >= low) & (Order.id <= high))
    wanted = set(order_ids)
    to_accept: dict[int, list[float]] = defaultdict(list)
    to_serve: dict[int, list[float]] = defaultdict(list)
    for row in rows:
        if row["id"] not in wanted:
            continue
        outcome.states[row["state"]] += 1
        outcome.levels[row["level"]] += 1
        if row["accepted_at"] is not None:
            to_accept[row["level"]].append((row["accepted_at"] - row["submitted_at"]).total_seconds() / 60)
        if row["started_at"] is not None:
            to_serve[row["level"]].append((row["started_at"] - row["submitted_at"]).total_seconds() / 60)
        if row["escalation_reason"]:
            outcome.escalations[row["escalation_reason"]] += 1
    outcome.to_accept, outcome.to_serve = dict(to_accept), dict(to_serve)
    offers = await Offer.select(Offer.state, Offer.order).where((Offer.order >= low) & (Offer.order <= high))
    outcome.offers = Counter(row["state"] for row in offers if row["order"] in wanted)
    consumed = await CreditEntry.select(CreditEntry.order, CreditEntry.reserved_change).where(
        (CreditEntry.kind == "consume") & (CreditEntry.order >= low) & (CreditEntry.order <= high)
    )
    outcome.credits_spent = -sum(row["reserved_change"] for row in consumed if row["order"] in wanted)
    outcome.credit_differences = len(await credits.check())
    return outcome


def at_rest(state: str) -> bool:
    """Whether an order of the replay has come to rest: a final state, or with a steward."""
    return state in FINAL or state == State.ESCALATED


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan
