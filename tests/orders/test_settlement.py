"""Monthly grants, proration, temporary credits lapsing, settlement per provider and month."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from households.events import LevelChanged
from households.tables import Household
from marketplace import clock, db, outbox
from marketplace.errors import Conflict, PermissionDenied, ValidationFailed
from marketplace.settings import get_settings
from notifications.tables import Notification
from orders import credits, settlement, tasks
from orders.credits import Balance
from orders.tables import CreditEntry, Order, Settlement, SettlementLine
from tests.conftest import run_jobs
from tests.orders.conftest import new_household

SHANGHAI_DEC_1 = datetime(2026, 12, 1, 0, 30, tzinfo=clock.local_zone())


@pytest.fixture
def no_proration(monkeypatch):
    """CLOUDMARKET_CREDITS_PRORATE=false for one test."""
    monkeypatch.setenv("CLOUDMARKET_CREDITS_PRORATE", "false")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


# -- months (plain Python) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("monthly", "day", "credits_"),
    [
        (300, date(2026, 12, 1), 300),
        (300, date(2026, 12, 31), 10),
        (310, date(2026, 12, 16), 160),
        (100, date(2027, 2, 15), 50),
    ],
)
def test_proration_counts_the_days_left(monthly, day, credits_):
    assert settlement.prorated(monthly, day) == credits_


def test_months_are_local():
    start, end = settlement.month_bounds("2026-12")
    assert start == datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert end == datetime(2026, 12, 31, 16, tzinfo=UTC)
    assert settlement.month_bounds("2026-01")[0] == datetime(2025, 12, 31, 16, tzinfo=UTC)
    assert settlement.month_of(datetime(2026, 11, 30, 17, tzinfo=UTC)) == "2026-12"
    with pytest.raises(ValidationFailed):
        settlement.parse_month("2026-13")


# -- monthly grants --------------------------------------------------------------------------------


async def test_each_household_gets_its_levels_credits_once_a_month(orders_world):
    clock.freeze(SHANGHAI_DEC_1)
    level1 = await orders_world.another_household(level=1, credits_=0)
    level3 = await orders_world.another_household(level=3, credits_=0)
    no_level = await orders_world.another_household(credits_=0)
    await Household.update({Household.level: None}).where(Household.id == no_level)
    exited = await orders_world.another_household(credits_=0)
    await Household.update({Household.status: "exited"}).where(Household.id == exited)

    assert await settlement.grant_month("2026-12") == 3
    assert await settlement.grant_month("2026-12") == 0
    assert await credits.balance(level1) == Balance(300, 0)
    assert await credits.balance(orders_world.household) == Balance(100 + 200, 0)
    assert await credits.balance(level3) == Balance(100, 0)
    assert await credits.balance(no_level) == Balance(0, 0)
    assert await credits.balance(exited) == Balance(0, 0)
    # The linked resident is told, once.
    [notice] = await Notification.select().where(Notification.event == "credits_granted")
    assert notice["user"] == orders_world.resident.user_id
    context = json.loads(notice["context"]) if isinstance(notice["context"], str) else notice["context"]
    assert (context["credits"], context["balance"]) == (200, 300)
    assert await credits.check() == []


class Killed(Exception):
    """The worker dies in the middle of a batch: its transaction never commits."""


async def test_a_grant_killed_midway_then_run_again_grants_each_household_once(orders_world, monkeypatch):
    # Given eleven households of three levels, four with a resident, in batches of three
    clock.freeze(SHANGHAI_DEC_1)
    monkeypatch.setattr(settlement, "GRANT_BATCH", 3)
    homes = [orders_world.household]
    for n in range(10):
        homes.append(await orders_world.another_household(level=1 + n % 3, credits_=0))
    for household_id in homes[1:4]:
        await orders_world.resident_for(household_id)
    # and one that got this month's credits already, when it was given its level
    await credits.grant(homes[5], 50, key=f"grant:2026-12:{homes[5]}", month="2026-12")
    before = {h: (await credits.balance(h)).available for h in homes}

    # When the job dies inside its third batch, after writing it
    real_batch = settlement._grant_batch
    calls = 0

    async def dies_in_the_third(month: str, amounts: dict[int, int]) -> dict[int, int]:
        nonlocal calls
        calls += 1
        async with db.atomic():
            granted = await real_batch(month, amounts)
            if calls == 3:
                raise Killed
        return granted

    monkeypatch.setattr(settlement, "_grant_batch", dies_in_the_third)
    with pytest.raises(Killed):
        await settlement.grant_month("2026-12")
    assert await CreditEntry.count().where(CreditEntry.key.like("grant:2026-12:%")) == 1 + 6 - 1
    assert await credits.check() == []

    # and is run again, whole, twice
    monkeypatch.setattr(settlement, "_grant_batch", real_batch)
    assert await settlement.grant_month("2026-12") == 11 - 6
    assert await settlement.grant_month("2026-12") == 0

    # Then each household got its level's credits once; the one granted before, nothing more
    levels = {r["id"]: r["level"] for r in await Household.select(Household.id, Household.level)}
    monthly = {1: 300, 2: 200, 3: 100}
    for household_id in homes:
        extra = 0 if household_id == homes[5] else monthly[levels[household_id]]
        assert (await credits.balance(household_id)).available == before[household_id] + extra, household_id
    grants = await CreditEntry.select(CreditEntry.household).where(CreditEntry.key.like("grant:2026-12:%"))
    assert sorted(r["household"] for r in grants) == sorted(homes)
    assert await credits.check() == []
    # and each resident was told once, with the balance after the grant
    notices = await Notification.select(Notification.key, Notification.context).where(
        Notification.event == "credits_granted"
    )
    told = sorted(n["key"].split(":")[3] for n in notices)
    assert told == sorted(str(h) for h in [homes[0], *homes[1:4]])
    for notice in notices:
        household_id = int(notice["key"].split(":")[3])
        context = json.loads(notice["context"]) if isinstance(notice["context"], str) else notice["context"]
        assert context["balance"] == (await credits.balance(household_id)).available


async def test_the_monthly_job_runs_once_per_month_through_the_queue(orders_world, worker):
    await run_jobs(worker)  # the household's level was just computed: this month's credits came then
    before = (await credits.balance(orders_world.household)).available
    today = clock.local_now().date()
    next_month = datetime(
        today.year + today.month // 12, today.month % 12 + 1, 1, 0, 30, tzinfo=clock.local_zone()
    )
    clock.freeze(next_month)
    await outbox.schedule_due()
    await run_jobs(worker)
    assert (await credits.balance(orders_world.household)).available == before + 200
    clock.freeze(next_month + timedelta(days=3))
    await outbox.schedule_due()
    await run_jobs(worker)
    assert (await credits.balance(orders_world.household)).available == before + 200
    clock.freeze(next_month + timedelta(days=31))
    await outbox.schedule_due()
    await run_jobs(worker)
    assert (await credits.balance(orders_world.household)).available == before + 400
    months = (
        await CreditEntry.select(CreditEntry.month)
        .where(CreditEntry.kind == "grant")
        .order_by(CreditEntry.id)
    )
    assert [row["month"] for row in months][-2:] == [
        settlement.month_of(next_month),
        settlement.month_of(next_month + timedelta(days=31)),
    ]
    assert await credits.check() == []


async def _level_set(household_id: int, at: datetime, level: int | None = 2, event_id: int = 1) -> None:
    await settlement.grant_on_new_level(
        LevelChanged(event_id, household_id, 1, None, level, "level_computed", at)
    )


async def test_a_level_given_mid_month_brings_the_days_left(orders_world):
    household = await orders_world.another_household(credits_=0)
    mid = datetime(2026, 12, 16, 10, tzinfo=clock.local_zone())
    await _level_set(household, mid)
    assert await credits.balance(household) == Balance(104, 0)  # 200 × 16/31, rounded up
    await _level_set(household, mid + timedelta(days=1), level=1, event_id=2)
    assert await credits.balance(household) == Balance(104, 0), "once a month"
    await _level_set(household, mid, level=None, event_id=3)
    assert await credits.balance(household) == Balance(104, 0)


async def test_without_proration_a_new_level_brings_the_whole_month(orders_world, no_proration):
    household = await orders_world.another_household(credits_=0)
    await _level_set(household, datetime(2026, 12, 16, 10, tzinfo=clock.local_zone()))
    assert await credits.balance(household) == Balance(200, 0)


async def test_a_new_household_is_granted_when_its_level_is_computed(area, make_user, worker):
    clock.freeze(datetime(2026, 12, 16, 10, tzinfo=clock.local_zone()))
    household = await new_household(area["communities"]["尧化门社区"], level=2, credits_=0)
    await run_jobs(worker)
    level = (await Household.select(Household.level).where(Household.id == household).first())["level"]
    entry = await CreditEntry.select().where(CreditEntry.household == household).first()
    assert entry is not None and entry["kind"] == "grant" and entry["month"] == "2026-12"
    assert level is not None


# -- temporary credits -----------------------------------------------------------------------------


async def test_temporary_credits_lapse_after_their_last_day(orders_world, worker):
    hh = orders_world.household
    clock.freeze(datetime(2026, 12, 10, 10, tzinfo=clock.local_zone()))
    await credits.grant_temporary(hh, 50, valid_until=date(2026, 12, 12), key="warning:9")
    assert await settlement.expire_temporary() == 0
    clock.freeze(datetime(2026, 12, 12, 23, tzinfo=clock.local_zone()))
    assert await settlement.expire_temporary() == 0, "usable through its last day"
    clock.freeze(datetime(2026, 12, 13, 0, 5, tzinfo=clock.local_zone()))
    await run_jobs(worker)  # whatever else was waiting (the household's level was just computed)
    before = await credits.balance(hh)
    async with db.atomic():
        await outbox.send(tasks.expire_temporary_credits, slot="test")
    await run_jobs(worker)
    assert (await credits.balance(hh)).available == before.available - 50
    assert await settlement.expire_temporary() == 0
    [lapsed] = await CreditEntry.select().where(CreditEntry.kind == "expire")
    assert lapsed["amount"] == -50


# -- settlement ------------------------------------------------------------------------------------


async def _confirmed_order(world, at: datetime, credits_: int = 24, provider: int | None = None) -> int:
    order = Order(
        number=f"CS-T{await Order.count() + 1:05d}",
        household=world.household,
        community=world.community,
        level=2,
        category=world.categories["cleaning"],
        window_start=at - timedelta(days=1),
        window_end=at - timedelta(days=1, hours=-2),
        state="confirmed",
        credits=credits_,
        provider=provider or world.provider,
        confirmed_at=at,
    )
    await Order.insert(order)
    return int(order.id)


async def test_settlement_follows_the_month_until_closed_then_stays(orders_world):
    nov = datetime(2026, 11, 20, 10, tzinfo=clock.local_zone())
    first = await _confirmed_order(orders_world, nov, 24)
    await _confirmed_order(orders_world, nov + timedelta(days=3), 30)
    await _confirmed_order(orders_world, datetime(2026, 12, 1, 0, 10, tzinfo=clock.local_zone()), 99)
    clock.freeze(datetime(2026, 11, 30, 12, tzinfo=clock.local_zone()))
    assert await settlement.refresh("2026-11") == 1
    [row] = await Settlement.select()
    assert (row["month"], row["orders_count"], row["credits"], row["state"]) == ("2026-11", 2, 54, "open")
    with pytest.raises(ValidationFailed):
        await settlement.close_month(orders_world.admin, "2026-11")
    clock.freeze(datetime(2026, 12, 2, 9, tzinfo=clock.local_zone()))
    with pytest.raises(PermissionDenied):
        await settlement.close_month(orders_world.steward, "2026-11")
    assert await settlement.close_month(orders_world.admin, "2026-11") == 1
    assert await SettlementLine.count() == 2
    # An order that turns up for November after closing changes nothing.
    await _confirmed_order(orders_world, nov + timedelta(days=5), 40)
    await settlement.refresh("2026-11")
    with pytest.raises(Conflict):
        await settlement.close_month(orders_world.admin, "2026-11")
    [row] = await settlement.statement("2026-11")
    assert (row["state"], row["orders_count"], row["credits"]) == ("closed", 2, 54)
    assert sorted(line["credits"] for line in row["lines"]) == [24, 30]
    assert row["lines"][0]["order"] == first and row["lines"][0]["number"].startswith("CS-T")
    # December is still open and follows its orders.
    await settlement.refresh("2026-12")
    [december] = await settlement.statement("2026-12", provider_id=orders_world.provider)
    assert (december["state"], december["credits"], len(december["lines"])) == ("open", 99, 1)


async def test_a_settlement_downloads_as_csv_for_its_provider_and_admins(
    orders_world, make_client, logged_in
):
    # Given two orders of the provider and one of another provider confirmed in November
    from providers.tables import Provider
    from tests.providers.factories import make_provider

    nov = datetime(2026, 11, 20, 10, tzinfo=clock.local_zone())
    first = await _confirmed_order(orders_world, nov + timedelta(days=3), 30)
    second = await _confirmed_order(orders_world, nov, 24)
    other = await make_provider(name="别家服务中心")
    await _confirmed_order(orders_world, nov, 7, provider=other)
    clock.freeze(datetime(2026, 11, 30, 12, tzinfo=clock.local_zone()))
    await settlement.refresh("2026-11")
    admin, _ = await logged_in("admin")
    staff, staff_user = await logged_in("provider_staff")
    from marketplace import accounts
    from marketplace.auth import LinkKind

    await accounts.link(staff_user["id"], LinkKind.PROVIDER, orders_world.provider)
    staff = make_client()  # log in again: the link is read at login
    assert (await staff.login(staff_user["phone"], staff_user["password"])).status_code in (302, 303)
    url = f"/api/v1/settlements/export.csv?month=2026-11&provider={orders_world.provider}"

    # When an administrator downloads it (in English) while the month is open
    response = await admin.get(url, headers={"accept-language": "en"})

    # Then a header, one line per order in the order they were confirmed, and a total line
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    filename = f"settlement-2026-11-provider-{orders_world.provider}.csv"
    assert response.headers["content-disposition"] == f'attachment; filename="{filename}"'
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    numbers = {
        row["id"]: row["number"] for row in await Order.select(Order.id, Order.number).where(
            Order.id.is_in([first, second])
        )
    }  # fmt: skip
    assert rows == [
        ["Order", "Confirmed on", "Category", "Credits"],
        [numbers[second], "2026-11-20", "Home cleaning", "24"],
        [numbers[first], "2026-11-23", "Home cleaning", "30"],
        ["Total", "", "2 orders", "54"],
    ]
    page = await admin.get("/admin/settlements?month=2026-11")
    assert url.replace("&", "&amp;") in page.text

    # The provider's staff get their own, not another provider's; residents none
    assert (await staff.get(url)).content == (await admin.get(url)).content
    assert (
        await staff.get(url.replace(f"provider={orders_world.provider}", f"provider={other}"))
    ).status_code == 404
    # and find it in their portal, with its link, without the other provider's month
    portal = await staff.get(f"/portal/{orders_world.provider}/settlements")
    assert portal.status_code == 200, portal.text
    assert url.replace("&", "&amp;") in portal.text and "2026-11" in portal.text
    assert f"provider={other}" not in portal.text
    assert (await staff.get(f"/portal/{other}/settlements")).status_code == 404
    resident, _ = await logged_in("resident")
    assert (await resident.get(url)).status_code == 403
    assert (await resident.get(f"/portal/{orders_world.provider}/settlements")).status_code == 404
    assert (await make_client().get(url)).status_code == 401
    assert (await admin.get(url.replace("2026-11", "2026-10"))).status_code == 404
    assert await Provider.exists().where(Provider.id == other)

    # Once the month is closed, an order confirmed late for November does not show
    clock.freeze(datetime(2026, 12, 2, 9, tzinfo=clock.local_zone()))
    await settlement.close_month(orders_world.admin, "2026-11")
    await _confirmed_order(orders_world, nov + timedelta(days=5), 40)
    await settlement.refresh("2026-11")
    admin, _ = await logged_in("admin")  # the session of two days ago has lapsed
    response = await admin.get(url)
    assert response.status_code == 200, response.text
    closed = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [row[0] for row in closed[1:-1]] == [numbers[second], numbers[first]]
    assert closed[-1][-1] == "54"
