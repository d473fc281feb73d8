"""The orders demo: orders in every lasting state, for the demo accounts to look at and act on."""

from __future__ import annotations

import re

from marketplace import demo
from orders.tables import CreditEntry, Order
from tests.conftest import run_jobs


async def test_the_demo_has_orders_in_every_lasting_state(worker, make_client):
    creds = await demo.seed_demo()
    await run_jobs(worker)  # the routing messages of the booked orders: the demo states stay
    states = {row["state"] for row in await Order.select(Order.state)}
    assert {"offered", "escalated", "accepted", "cancelled"} <= states
    assert await CreditEntry.exists().where(CreditEntry.kind == "grant")
    logins = {c.role: c for c in creds}

    async def client_of(role: str):
        client = make_client()
        await client.login(logins[role].phone, logins[role].password)
        return client

    resident = await client_of("resident")
    mine = await resident.get("/orders")
    assert len(set(re.findall(r"CS\d{8}-\d{6}", mine.text))) == 3
    steward = await client_of("steward")
    escalated = await Order.select(Order.number).where(Order.state == "escalated").first()
    assert escalated["number"] in (await steward.get("/orders/board")).text
    staff = await client_of("provider_staff")
    assert len(set(re.findall(r"CS\d{8}-\d{6}", (await staff.get("/orders")).text))) >= 3
