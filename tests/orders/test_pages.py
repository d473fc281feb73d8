"""Order pages for each role: lists, an order's page, the offers inbox, the board, the live feed."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from marketplace import clock
from orders import live, moves, queries
from orders.controllers import live_stream
from tests.households.conftest import area  # noqa: F401 - fixture
from tests.orders import scene as sc


@pytest.fixture
async def scene(area, make_user) -> sc.Scene:  # noqa: F811
    return await sc.build(area, make_user)


@pytest.fixture
def as_user(make_client):
    """A client logged in as one of the scene's users."""

    async def login(user: dict) -> object:
        client = make_client()
        response = await client.login(user["phone"], user["password"])
        assert response.status_code in (302, 303)
        return client

    return login


async def numbers_on(client, url: str = "/orders") -> set[str]:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    return set(re.findall(r"CS\d{8}-\d{6}", response.text))


async def order_numbers(scene: sc.Scene) -> dict[str, str]:
    from orders.tables import Order

    rows = await Order.select(Order.id, Order.number)
    by_id = {r["id"]: r["number"] for r in rows}
    return {name: by_id[oid] for name, oid in scene.orders.items()}


async def test_each_role_lists_only_the_orders_in_its_reach(scene, as_user):
    numbers = await order_numbers(scene)
    expect = {
        "resident": {"offered", "accepted", "cancelled"},
        "resident_away": {"rival", "escalated"},
        "staff": {"offered", "accepted"},
        "rival_staff": {"rival"},
        "steward": {"offered", "accepted", "cancelled"},
        "steward_away": {"rival", "escalated"},
        "admin": set(numbers),
    }
    for name, wanted in expect.items():
        client = await as_user(scene.users[name])
        seen = await numbers_on(client)
        assert seen == {numbers[w] for w in wanted}, name


async def test_filters_narrow_the_list(scene, as_user):
    numbers = await order_numbers(scene)
    admin = await as_user(scene.users["admin"])
    assert await numbers_on(admin, "/orders?state=escalated") == {numbers["escalated"]}
    assert await numbers_on(admin, "/orders?category=meals") == {numbers["cancelled"]}
    under_way = await numbers_on(admin, "/orders?state=open")
    assert numbers["cancelled"] not in under_way and numbers["accepted"] in under_way
    day = sc.window(2)[0].date().isoformat()
    assert await numbers_on(admin, f"/orders?date_from={day}&date_to={day}") == {numbers["accepted"]}
    assert await numbers_on(admin, f"/orders?community={scene.other_community}") == {
        numbers["rival"],
        numbers["escalated"],
    }
    # Empty form fields and nonsense are read as "no filter", not as an error.
    assert len(await numbers_on(admin, "/orders?level=&date_from=x&community=")) == len(numbers)


async def test_a_provider_sees_no_address_before_acceptance_and_never_the_category(scene, as_user):
    staff = await as_user(scene.users["staff"])
    offered = await staff.get(f"/orders/{scene.orders['offered']}")
    assert offered.status_code == 200
    assert "秘密路" not in offered.text
    assert "特困" not in offered.text  # the household's assistance category (tekun)
    accepted = await staff.get(f"/orders/{scene.orders['accepted']}")
    assert accepted.status_code == 200
    assert "秘密路" in accepted.text
    assert "特困" not in accepted.text and "WEB-" not in accepted.text


async def test_order_pages_are_404_beyond_reach(scene, as_user):
    from tests.helpers import assert_isolated

    rival = await as_user(scene.users["rival_staff"])
    away = await as_user(scene.users["resident_away"])
    steward_away = await as_user(scene.users["steward_away"])
    steward = await as_user(scene.users["steward"])
    resident = await as_user(scene.users["resident"])
    await assert_isolated(
        f"/orders/{scene.orders['accepted']}",
        allowed=[steward, resident, await as_user(scene.users["staff"])],
        denied=[rival, away, steward_away],
        missing_url="/orders/999999",
    )


async def test_the_steward_sees_the_household_and_the_ranking(scene, as_user):
    steward = await as_user(scene.users["steward"])
    page = await steward.get(f"/orders/{scene.orders['offered']}")
    assert page.status_code == 200
    assert "秘密路" in page.text and "WEB-" in page.text and "特困" in page.text
    assert "空闲" in page.text  # the offer's ranking reason


async def test_the_residents_page_shows_progress_and_timeline(scene, as_user):
    resident = await as_user(scene.users["resident"])
    page = await resident.get(f"/orders/{scene.orders['accepted']}")
    assert page.status_code == 200
    assert 'aria-current="step"' in page.text
    assert "甲服务中心" in page.text
    cancelled = await resident.get(f"/orders/{scene.orders['cancelled']}")
    assert "不需要了" in cancelled.text


async def test_offers_inbox_and_dispatch_board(scene, as_user):
    numbers = await order_numbers(scene)
    staff = await as_user(scene.users["staff"])
    inbox = await staff.get("/orders/offers")
    assert inbox.status_code == 200
    assert numbers["offered"] in inbox.text and numbers["accepted"] not in inbox.text
    answered = await staff.get("/orders/offers?all_offers=true")
    assert numbers["accepted"] in answered.text
    rival = await as_user(scene.users["rival_staff"])
    assert numbers["offered"] not in (await rival.get("/orders/offers")).text
    steward_away = await as_user(scene.users["steward_away"])
    board = await steward_away.get("/orders/board")
    assert board.status_code == 200 and numbers["escalated"] in board.text
    steward = await as_user(scene.users["steward"])
    assert numbers["escalated"] not in (await steward.get("/orders/board")).text
    resident = await as_user(scene.users["resident"])
    assert (await resident.get("/orders/board")).status_code == 403
    assert (await resident.get("/orders/offers")).status_code == 403


async def test_menus_lead_to_the_order_pages(scene, as_user):
    for name in ("resident", "staff", "steward", "admin"):
        client = await as_user(scene.users[name])
        home = await client.get("/")
        assert 'href="/orders' in home.text, name


async def test_pages_in_english(scene, as_user):
    resident = await as_user(scene.users["resident"])
    resident.set_cookie("cm_lang", "en")
    page = await resident.get("/orders")
    assert "My orders" in page.text
    detail = await resident.get(f"/orders/{scene.orders['accepted']}")
    assert "Timeline" in detail.text and "Accepted" in detail.text


# -- live ------------------------------------------------------------------------------------------


async def test_a_committed_move_reaches_the_orders_watchers(scene):
    order_id = scene.orders["offered"]
    async with live.watch(order_id) as queue:
        await asyncio.sleep(0.05)  # the subscription is in place before the move
        await moves.move(order_id, "accept", values={"provider": scene.provider, "accepted_at": clock.now()})
        news = await asyncio.wait_for(queue.get(), timeout=30)
    assert news["order"] == order_id and news["state"] == "accepted" and news["kind"] == "accept"
    assert live.watcher_count(order_id) == 0


async def test_a_move_rolled_back_is_not_published(scene):
    from marketplace import db

    order_id = scene.orders["offered"]
    async with live.watch(order_id) as queue:
        await asyncio.sleep(0.05)
        with pytest.raises(RuntimeError):
            async with db.atomic():
                await moves.move(order_id, "accept")
                raise RuntimeError("the rest of the action failed")
        await moves.move(order_id, "cancel")
        news = await asyncio.wait_for(queue.get(), timeout=30)
    assert news["state"] == "cancelled"  # the first news is the committed cancel, not the accept


async def test_the_live_feed_streams_the_state_then_each_move(scene):
    order_id = scene.orders["accepted"]
    messages = []
    state, version = await queries.order_version(order_id)

    async def read() -> None:
        async for message in live_stream(order_id, state, version):
            messages.append(message)

    reader = asyncio.create_task(read())
    for _ in range(300):
        if messages and (live.watcher_count(order_id) or not _embedded()):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    await moves.move(order_id, "start", values={"started_at": clock.now()})
    await moves.move(order_id, "fail", note="没人在家")
    await asyncio.wait_for(reader, timeout=30)
    states = [json.loads(m.data)["state"] for m in messages if m.data]
    assert states == ["accepted", "in_service", "failed"]
    assert messages[0].event == "state" and messages[-1].event == "move"


def _embedded() -> bool:
    from marketplace.settings import get_settings

    return not get_settings().redis_url


async def test_the_live_feed_of_an_ended_order_says_so_and_closes(scene, as_user):
    resident = await as_user(scene.users["resident"])
    response = await resident.get(f"/orders/{scene.orders['cancelled']}/live")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "event: state" in response.text and '"cancelled"' in response.text
    other = await as_user(scene.users["resident_away"])
    assert (await other.get(f"/orders/{scene.orders['cancelled']}/live")).status_code == 404
