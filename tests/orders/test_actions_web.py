"""Booking and order actions through the pages (forms with one-time tokens) and the API
(Idempotency-Key), over the real booking, dispatch and fulfilment services."""

from __future__ import annotations

import json
import re

from notifications.tables import Notification
from orders.tables import Offer, Order
from tests.orders import scene as sc
from tests.orders.conftest import tomorrow_window


def once_token(html: str) -> str:
    found = re.search(r'name="_once" value="([^"]+)"', html)
    assert found, "the form has no one-time token"
    return found.group(1)


def local(dt) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M")


async def login(make_client, user: dict):
    client = make_client()
    response = await client.login(user["phone"], user["password"])
    assert response.status_code in (302, 303)
    return client


async def book_form(client, **fields) -> dict[str, str]:
    params = {"category": "cleaning", **{k: v for k, v in fields.items() if k in ("category", "household")}}
    page = await client.get("/orders/new", params=params)
    assert page.status_code == 200, page.text
    start, end = tomorrow_window()
    return {
        "_once": once_token(page.text),
        "category": fields.get("category", "cleaning"),
        "window_start": local(start),
        "window_end": local(end),
        "notes": "三楼，敲门",
    }


async def texted_code(consent_id: int) -> str:
    row = (
        await Notification.select()
        .where(Notification.key.like(f"consent_code:consent:{consent_id}:%"))
        .first()
    )
    context = json.loads(row["context"]) if isinstance(row["context"], str) else row["context"]
    return str(context["code"])


async def test_a_resident_books_once_however_often_the_form_is_sent(orders_world, make_client):
    resident = await login(make_client, orders_world.resident_user)
    choose = await resident.get("/orders/new")
    assert "/orders/new?category=cleaning" in choose.text
    form = await book_form(resident)
    first = await resident.post_form("/orders/new", form)
    assert first.status_code in (302, 303), first.text
    assert re.fullmatch(r"/orders/\d+", first.headers["location"])
    again = await resident.post_form("/orders/new", form)
    assert again.status_code in (302, 303)
    assert await Order.count() == 1
    page = await resident.get(first.headers["location"])
    assert "三楼，敲门" in page.text and 'aria-current="step"' in page.text


async def test_booking_errors_are_shown_next_to_the_field(orders_world, make_client):
    resident = await login(make_client, orders_world.resident_user)
    form = await book_form(resident)
    form["window_end"] = form["window_start"]
    page = await resident.post_form("/orders/new", form)
    assert page.status_code == 422
    assert 'id="f-window_end-error"' in page.text and 'aria-invalid="true"' in page.text
    assert await Order.count() == 0
    # The page comes back with a fresh token: correcting and sending again books.
    form = {**form, "_once": once_token(page.text), "window_end": (await book_form(resident))["window_end"]}
    assert (await resident.post_form("/orders/new", form)).status_code in (302, 303)
    assert await Order.count() == 1


async def test_a_steward_books_on_behalf_with_the_texted_code(orders_world, make_client):
    steward = await login(make_client, orders_world.steward_user)
    form = await book_form(steward, household=orders_world.household)
    form["household_id"] = str(orders_world.household)
    sent = await steward.post_form("/orders/new", {**form, "send_code": "1", "consent_method": "sms_code"})
    assert sent.status_code == 200, sent.text
    consent_id = re.search(r'name="consent_id" value="(\d+)"', sent.text).group(1)
    code = await texted_code(int(consent_id))
    booked = await steward.post_form(
        "/orders/new",
        {**form, "_once": once_token(sent.text), "consent_method": "sms_code", "consent_id": consent_id,
         "consent_code": code},
    )  # fmt: skip
    assert booked.status_code in (302, 303), booked.text
    order = await Order.select().first()
    assert (order["channel"], order["consent_method"], order["household"]) == (
        "steward",
        "sms_code",
        orders_world.household,
    )


async def test_cancel_from_the_order_page(orders_world, make_client):
    resident = await login(make_client, orders_world.resident_user)
    await resident.post_form("/orders/new", await book_form(resident))
    order = await Order.select().first()
    page = await resident.get(f"/orders/{order['id']}")
    no_reason = await resident.post_form(
        f"/orders/{order['id']}/cancel", {"_once": once_token(page.text), "reason": ""}
    )
    assert no_reason.status_code == 422 and 'id="f-reason-error"' in no_reason.text
    done = await resident.post_form(
        f"/orders/{order['id']}/cancel", {"_once": once_token(no_reason.text), "reason": "家人来了"}
    )
    assert done.status_code in (302, 303)
    assert (await Order.select(Order.state).first())["state"] == "cancelled"


async def test_a_provider_accepts_an_offer_from_its_page(orders_world, make_client, make_user):
    from marketplace import accounts
    from marketplace.auth import LinkKind

    resident = await login(make_client, orders_world.resident_user)
    await resident.post_form("/orders/new", await book_form(resident))
    order = await Order.select().first()
    offering = orders_world.offerings["cleaning"]
    await sc.offer(order["id"], orders_world.provider, offering)
    staff_user = await make_user("provider_staff")
    await accounts.link(staff_user["id"], LinkKind.PROVIDER, orders_world.provider)
    staff = await login(make_client, staff_user)
    page = await staff.get(f"/orders/{order['id']}")
    assert "订单路" not in page.text  # no address before acceptance
    offer_id = re.search(r'name="offer" value="(\d+)"', page.text).group(1)
    accepted = await staff.post_form(
        f"/orders/{order['id']}/accept", {"_once": once_token(page.text), "offer": offer_id}
    )
    assert accepted.status_code in (302, 303), accepted.text
    after = await staff.get(f"/orders/{order['id']}")
    assert "订单路" in after.text
    assert (await Offer.select(Offer.state).first())["state"] == "accepted"


async def test_api_booking_honours_the_idempotency_key(orders_world, make_client):
    resident = await login(make_client, orders_world.resident_user)
    start, end = tomorrow_window()
    body = {"category": "cleaning", "window_start": start.isoformat(), "window_end": end.isoformat()}
    headers = {"x-csrftoken": await resident.csrf(), "Idempotency-Key": "book-1"}
    first = await resident.post("/api/v1/orders", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await resident.post("/api/v1/orders", json=body, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    assert await Order.count() == 1
    other = await resident.post("/api/v1/orders", json={**body, "notes": "变了"}, headers=headers)
    assert other.status_code == 422
    order_id = first.json()["order"]["id"]
    cancel = await resident.post(
        f"/api/v1/orders/{order_id}/cancel",
        json={"reason": "不需要了"},
        headers={"x-csrftoken": await resident.csrf()},
    )
    assert cancel.status_code == 200 and cancel.json()["state"] == "cancelled"
    credits = (await resident.get("/api/v1/credits")).json()
    assert credits["available"] == 100 and [e["kind"] for e in credits["entries"]][:2] == [
        "release",
        "reserve",
    ]


async def _booked(orders_world, make_client) -> dict:
    resident = await login(make_client, orders_world.resident_user)
    await resident.post_form("/orders/new", await book_form(resident))
    return await Order.select().first()


async def test_a_steward_dispatches_an_escalated_order_from_the_board(orders_world, make_client):
    from orders import moves

    order = await _booked(orders_world, make_client)
    await moves.move(order["id"], "escalate", values={"escalation_reason": "no_candidate"})
    steward = await login(make_client, orders_world.steward_user)
    board = await steward.get("/orders/board")
    assert order["number"] in board.text
    page = await steward.get(f"/orders/{order['id']}/dispatch")
    assert page.status_code == 200 and "订单测试服务中心" in page.text
    offering = orders_world.offerings["cleaning"]
    sent = await steward.post_form(
        f"/orders/{order['id']}/dispatch", {"_once": once_token(page.text), "offering": str(offering)}
    )
    assert sent.status_code in (302, 303), sent.text
    after = await Order.select(Order.state, Order.provider).first()
    assert (after["state"], after["provider"]) == ("accepted", orders_world.provider)
    assert order["number"] not in (await steward.get("/orders/board")).text
    # A resident cannot reach the dispatch page.
    resident = await login(make_client, orders_world.resident_user)
    assert (await resident.get(f"/orders/{order['id']}/dispatch")).status_code == 403


async def test_two_providers_accept_at_once_over_the_api_one_wins(orders_world, make_client, make_user):
    import asyncio

    from marketplace import accounts
    from marketplace.auth import LinkKind
    from tests.providers.factories import make_offering, make_provider

    order = await _booked(orders_world, make_client)
    rival = await make_provider(name="对手中心")
    rival_offering = await make_offering(rival, orders_world.categories["cleaning"], [orders_world.community])
    first = await sc.offer(order["id"], orders_world.provider, orders_world.offerings["cleaning"])
    second_id = (
        await Offer.insert(
            Offer(order=order["id"], provider=rival, offering=rival_offering, key=f"{order['id']}:{rival}",
                  state="open", expires_at=(await Offer.select(Offer.expires_at).first())["expires_at"])
        ).returning(Offer.id)
    )[0]["id"]  # fmt: skip
    clients = []
    for provider in (orders_world.provider, rival):
        user = await make_user("provider_staff")
        await accounts.link(user["id"], LinkKind.PROVIDER, provider)
        clients.append(await login(make_client, user))
    answers = await asyncio.gather(
        *[
            c.post(f"/api/v1/offers/{offer}/accept", headers={"x-csrftoken": await c.csrf()})
            for c, offer in zip(clients, (first, second_id), strict=True)
        ]
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    assert (await Order.select(Order.state).first())["state"] == "accepted"
    # The rival cannot accept for the other provider's offer: it is not theirs to see.
    assert (
        await clients[1].post(
            f"/api/v1/offers/{first}/accept", headers={"x-csrftoken": await clients[1].csrf()}
        )
    ).status_code == 404


async def test_credits_pages(orders_world, make_client):
    await _booked(orders_world, make_client)
    resident = await login(make_client, orders_world.resident_user)
    page = await resident.get("/credits")
    assert page.status_code == 200 and 'class="balance"' in page.text
    steward = await login(make_client, orders_world.steward_user)
    assert (await steward.get(f"/credits?household={orders_world.household}")).status_code == 200
    away = await orders_world.make_user("steward")
    other = await login(make_client, away)
    assert (await other.get(f"/credits?household={orders_world.household}")).status_code == 404
    assert (await other.get(f"/api/v1/credits?household={orders_world.household}")).status_code == 404


async def test_settlements_for_admins(orders_world, make_client):
    from orders.tables import Settlement

    await Settlement.insert(
        Settlement(month="2026-11", provider=orders_world.provider, key=f"2026-11:{orders_world.provider}",
                   orders_count=4, credits=120, state="closed")
    )  # fmt: skip
    admin = await login(make_client, await orders_world.make_user("admin"))
    page = await admin.get("/admin/settlements?month=2026-11")
    assert page.status_code == 200 and "订单测试服务中心" in page.text and "120" in page.text
    body = (await admin.get("/api/v1/settlements?month=2026-11")).json()
    assert body["items"][0]["credits"] == 120 and body["items"][0]["orders_count"] == 4
    resident = await login(make_client, orders_world.resident_user)
    assert (await resident.get("/admin/settlements")).status_code == 403


async def test_an_administrator_closes_a_month(orders_world, make_client):
    from orders.tables import Settlement

    await Settlement.insert(
        Settlement(month="2026-10", provider=orders_world.provider, key=f"2026-10:{orders_world.provider}")
    )
    admin = await login(make_client, await orders_world.make_user("admin"))
    page = await admin.get("/admin/settlements")
    not_over = await admin.post_form(
        "/admin/settlements/close", {"_once": once_token(page.text), "month": "2999-01"}
    )
    assert not_over.status_code == 422 and 'id="f-close-month-error"' in not_over.text
    closed = await admin.post_form(
        "/admin/settlements/close", {"_once": once_token(not_over.text), "month": "2026-10"}
    )
    assert closed.status_code in (302, 303), closed.text
    assert (await Settlement.select(Settlement.state).first())["state"] == "closed"
