"""The figures read what the orders package really writes: a booking, its cancellation, its credits."""

from __future__ import annotations

from orders import booking, credits
from reports import figures
from reports.figures import Period, Scope
from tests.households.conftest import area  # noqa: F401 - fixtures of the orders scene
from tests.orders.conftest import orders_world  # noqa: F401
from tests.orders.test_booking import _form


async def test_bookings_cancellations_and_spent_credits_show_in_the_month(orders_world):  # noqa: F811
    w = orders_world
    scope, period = Scope("community", w.community), Period.parse(figures.current_month())
    kept = await booking.book(w.resident, _form())
    dropped = await booking.book(w.resident, _form())
    await booking.cancel(w.resident, dropped["id"], reason="不需要了")
    await credits.consume(kept["id"])

    f = await figures.compute(scope, period)
    [cleaning] = [c for c in f.categories if c.category == "cleaning"]
    assert (cleaning.level, cleaning.orders) == (2, 2)
    two = next(x for x in f.levels if x.level == 2)
    assert (two.submitted, two.cancelled, two.accepted) == (2, 1, 0)
    assert two.acceptance_rate == 0.0  # one order left that could be accepted, and it was not (yet)
    # The household's 100 credits were granted this month; the kept order's credits were spent.
    assert f.credits.granted == 100
    assert f.credits.spent == kept["credits"] > 0
