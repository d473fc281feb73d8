"""Confirming by replying to the text: the grammar, signed requests from the gateway, replays,
wrong codes, unknown senders, two orders waiting, and logs without the phone number."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta

import pytest

from marketplace import clock
from marketplace.settings import get_settings
from notifications import signing
from orders import replies
from orders.replies import Reply
from orders.tables import Order, OrderEvent
from tests.orders.test_fulfilment import accepted_order, serve, texted_code

SECRET = signing.new_secret()
HOME_PHONE = "13612340000"  # the household's and its member's mobile (routing_world.new_household)


@pytest.fixture
def gateway_secret(monkeypatch):
    """CLOUDMARKET_SMS_GATEWAY_SECRET set for one test."""
    monkeypatch.setenv("CLOUDMARKET_SMS_GATEWAY_SECRET", SECRET)
    get_settings.cache_clear()
    yield SECRET
    monkeypatch.undo()
    get_settings.cache_clear()


def signed(payload: dict, *, secret: str = SECRET, age: timedelta = timedelta(0)) -> tuple[bytes, dict]:
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = signing.headers(secret, payload.get("id") or uuid.uuid4().hex, clock.now() - age, body)
    return body, {"content-type": "application/json", **headers}


async def send(client, text: str, *, phone: str = HOME_PHONE, message_id: str | None = None) -> dict:
    """POST one text as the gateway would; the JSON answer (asserting 200)."""
    payload = {
        "id": message_id or uuid.uuid4().hex,
        "from": f"+86{phone}",
        "text": text,
        "received_at": 1733472000.25,
    }
    body, headers = signed(payload)
    response = await client.post("/api/v1/sms/inbound", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def served_order(world) -> tuple[int, str]:
    order_id, _, _, staff = await accepted_order(world)
    await serve(order_id, staff)
    return order_id, await texted_code(order_id)


async def state_of(order_id: int) -> str:
    return (await Order.select(Order.state).where(Order.id == order_id).first())["state"]


def other_than(code: str) -> str:
    return "000000" if code != "000000" else "111111"


# -- the grammar (plain Python) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("123456", Reply("123456")),
        (" 确认 123456 ", Reply("123456")),
        ("确认123456", Reply("123456")),
        ("123456 5", Reply("123456", 5)),
        ("好 123456，5星", Reply("123456", 5)),
        ("１２３４５６ １", Reply("123456", 1)),  # full-width digits
        ("123456 0", None),
        ("123456 6", None),
        ("123456 45", None),
        ("12345", None),
        ("1234567", None),
        ("5 123456", None),
        ("123456 123456", None),
        ("好的，谢谢", None),
        ("", None),
    ],
)
def test_what_a_reply_may_say(text, reply):
    assert replies.parse(text) == reply


# -- through the gateway ---------------------------------------------------------------------------


async def test_a_resident_confirms_and_rates_by_replying_once_however_often_it_comes(
    world, make_client, gateway_secret, caplog
):
    # Given an order served, whose code was texted to the household
    order_id, code = await served_order(world)
    client = make_client()

    # When the resident replies with the code and 5 stars
    caplog.set_level(logging.INFO, logger="cloudmarket")
    answer = await send(client, f"确认 {code} 5", message_id="gw-1")

    # Then the order is confirmed by code, rated, and the gateway is told
    number = (await Order.select(Order.number).where(Order.id == order_id).first())["number"]
    assert answer["outcome"] == "confirmed" and answer["order"] == number and answer["id"] == "gw-1"
    assert number in answer["reply"]
    row = await Order.select().where(Order.id == order_id).first()
    assert (row["state"], row["rating"]) == ("confirmed", 5)
    [event] = await OrderEvent.select().where((OrderEvent.order == order_id) & (OrderEvent.kind == "confirm"))
    detail = json.loads(event["detail"]) if isinstance(event["detail"], str) else event["detail"]
    assert detail["how"] == "code"

    # The gateway sends the same message again: the same answer, nothing done twice
    assert await send(client, f"确认 {code} 5", message_id="gw-1") == answer
    assert (
        await OrderEvent.count().where((OrderEvent.order == order_id) & (OrderEvent.kind == "confirm")) == 1
    )
    # A new message with the same code finds nothing left to confirm
    assert (await send(client, code))["outcome"] == "no_order"

    # The full phone number is in no log record
    records = [r for r in caplog.records if r.name.startswith("cloudmarket")]
    assert any(getattr(r, "outcome", None) == "confirmed" for r in records)
    assert not [r for r in records if HOME_PHONE in str(r.__dict__)]


async def test_a_request_without_the_gateways_signature_is_refused(world, make_client, gateway_secret):
    order_id, code = await served_order(world)
    client = make_client()
    payload = {"id": "gw-2", "from": HOME_PHONE, "text": code}
    url = "/api/v1/sms/inbound"

    body, headers = signed(payload, secret=signing.new_secret())
    wrong = await client.post(url, content=body, headers=headers)
    assert (
        wrong.status_code == 401 and wrong.json()["code"] == "not_authenticated" and SECRET not in wrong.text
    )
    body, headers = signed(payload, age=timedelta(minutes=6))
    assert (await client.post(url, content=body, headers=headers)).status_code == 401
    body, headers = signed(payload)
    tampered = body.replace(b"gw-2", b"gw-3")
    assert (await client.post(url, content=tampered, headers=headers)).status_code == 401
    assert (
        await client.post(url, content=body, headers={"content-type": "application/json"})
    ).status_code == 401
    assert await state_of(order_id) == "completed"
    # The right signature passes (and no CSRF token is asked for)
    assert (await client.post(url, content=body, headers=headers)).json()["outcome"] == "confirmed"


async def test_without_a_secret_the_endpoint_says_what_to_set(world, make_client, monkeypatch):
    monkeypatch.delenv("CLOUDMARKET_SMS_GATEWAY_SECRET", raising=False)
    get_settings.cache_clear()
    body, headers = signed({"id": "gw-4", "from": HOME_PHONE, "text": "123456"})
    response = await make_client().post("/api/v1/sms/inbound", content=body, headers=headers)
    assert response.status_code == 404
    assert "CLOUDMARKET_SMS_GATEWAY_SECRET" in response.json()["detail"]


async def test_unknown_senders_wrong_codes_and_chatter_change_nothing(world, make_client, gateway_secret):
    order_id, code = await served_order(world)
    client = make_client()
    assert (await send(client, code, phone="13911112222"))["outcome"] == "unknown_sender"
    assert (await send(client, "谢谢师傅"))["outcome"] == "not_understood"
    assert (await send(client, f"{code} 9"))["outcome"] == "not_understood"
    answer = await send(client, other_than(code))
    assert answer["outcome"] == "wrong_code" and answer["order"] is None
    assert await state_of(order_id) == "completed"
    # Guessing meets the order's limit (5 tries an hour): then even the right code waits
    for guess in range(4):
        assert (await send(client, f"{guess:06d}" if f"{guess:06d}" != code else "999999"))["outcome"] in {
            "wrong_code",
            "rate_limited",
        }
    assert (await send(client, code))["outcome"] == "rate_limited"
    assert await state_of(order_id) == "completed"
    clock.advance(timedelta(hours=1, minutes=1))
    assert (await send(client, code))["outcome"] == "confirmed"


async def test_with_two_orders_waiting_the_code_picks_one_and_a_proxy_may_reply(
    world, make_client, gateway_secret
):
    first, first_code = await served_order(world)
    second, second_code = await served_order(world)
    assert first_code != second_code
    client = make_client()

    answer = await send(client, second_code)
    assert answer["outcome"] == "confirmed"
    assert (await state_of(first), await state_of(second)) == ("completed", "confirmed")

    # A family member's resident account linked to the household replies from their own phone
    proxy = await world.make_user("resident")
    from marketplace import accounts
    from marketplace.auth import LinkKind

    await accounts.link(proxy["id"], LinkKind.HOUSEHOLD, world.household)
    assert (await send(client, first_code, phone=proxy["phone"]))["outcome"] == "confirmed"
    assert await state_of(first) == "confirmed"


async def test_the_openapi_schema_describes_the_inbound_sms(client):
    schema = (await client.get("/schema/openapi.json")).json()
    inbound = schema["paths"]["/api/v1/sms/inbound"]["post"]
    assert "webhook-signature" in inbound["description"] and inbound["security"] == [{"smsGateway": []}]
    body = inbound["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert {"from", "text", "id", "received_at"} <= set(schema["components"]["schemas"][body]["properties"])
    answer = inbound["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "outcome" in schema["components"]["schemas"][answer]["properties"]
