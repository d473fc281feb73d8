"""The orders JSON API: what each role reads, filters, and the OpenAPI description."""

from __future__ import annotations

import pytest

from tests.households.conftest import area  # noqa: F401 - fixture
from tests.orders import scene as sc
from tests.orders.test_pages import as_user, order_numbers  # noqa: F401 - fixtures and helpers


@pytest.fixture
async def scene(area, make_user) -> sc.Scene:  # noqa: F811
    return await sc.build(area, make_user)


async def test_each_role_reads_only_its_orders(scene, as_user):  # noqa: F811
    numbers = await order_numbers(scene)
    expect = {
        "resident": {"offered", "accepted", "cancelled"},
        "staff": {"offered", "accepted"},
        "rival_staff": {"rival"},
        "steward_away": {"rival", "escalated"},
        "admin": set(numbers),
    }
    for name, wanted in expect.items():
        client = await as_user(scene.users[name])
        body = (await client.get("/api/v1/orders?per_page=50")).json()
        assert {item["number"] for item in body["items"]} == {numbers[w] for w in wanted}, name
        assert body["total"] == len(wanted)


async def test_filters_sorting_and_pages(scene, as_user):  # noqa: F811
    admin = await as_user(scene.users["admin"])
    body = (await admin.get("/api/v1/orders?state=open&sort=window&per_page=2")).json()
    assert body["total"] == 4 and body["pages"] == 2 and len(body["items"]) == 2
    starts = [item["window_start"] for item in body["items"]]
    assert starts == sorted(starts)
    page2 = (await admin.get("/api/v1/orders?state=open&sort=window&per_page=2&page=2")).json()
    assert not {i["id"] for i in page2["items"]} & {i["id"] for i in body["items"]}
    assert (await admin.get("/api/v1/orders?category=errands")).json()["items"][0]["state"] == "escalated"
    assert (await admin.get("/api/v1/orders?level=4")).status_code == 400
    assert (await admin.get("/api/v1/orders?date_from=yesterday")).status_code == 400


async def test_a_provider_reads_the_address_only_while_serving(scene, as_user):  # noqa: F811
    staff = await as_user(scene.users["staff"])
    offered = (await staff.get(f"/api/v1/orders/{scene.orders['offered']}")).json()
    assert offered["household"]["address"] is None and offered["household"]["phone"] is None
    assert offered["household"]["category"] is None and offered["household"]["code"] is None
    assert [o["provider_id"] for o in offered["offers"]] == [scene.provider]
    accepted = (await staff.get(f"/api/v1/orders/{scene.orders['accepted']}")).json()
    assert accepted["household"]["address"].startswith("秘密路")
    assert accepted["household"]["category"] is None
    assert "tekun" not in str(accepted) and "特困" not in str(accepted)


async def test_staff_read_the_household_and_the_offers(scene, as_user):  # noqa: F811
    steward = await as_user(scene.users["steward"])
    body = (await steward.get(f"/api/v1/orders/{scene.orders['accepted']}")).json()
    assert body["household"]["code"].startswith("WEB-") and body["household"]["category"]
    assert body["order"]["provider_name"] == "甲服务中心"
    assert [s["status"] for s in body["steps"]][:3] == ["done", "done", "current"]
    assert [e["kind"] for e in body["events"]] == ["submit", "route", "offer", "accept"]


async def test_orders_beyond_reach_are_404_like_missing_ones(scene, as_user):  # noqa: F811
    from tests.helpers import assert_isolated

    await assert_isolated(
        f"/api/v1/orders/{scene.orders['rival']}",
        allowed=[await as_user(scene.users["rival_staff"]), await as_user(scene.users["steward_away"])],
        denied=[
            await as_user(scene.users["staff"]),
            await as_user(scene.users["resident"]),
            await as_user(scene.users["steward"]),
        ],
        missing_url="/api/v1/orders/999999",
    )


async def test_offers_api(scene, as_user):  # noqa: F811
    staff = await as_user(scene.users["staff"])
    body = (await staff.get("/api/v1/offers")).json()
    assert [o["order_id"] for o in body["items"]] == [scene.orders["offered"]]
    everything = (await staff.get("/api/v1/offers?all_offers=true")).json()
    assert {o["order_id"] for o in everything["items"]} == {scene.orders["offered"], scene.orders["accepted"]}
    resident = await as_user(scene.users["resident"])
    assert (await resident.get("/api/v1/offers")).status_code == 403


async def test_the_openapi_schema_describes_the_orders_api(client):
    schema = (await client.get("/schema/openapi.json")).json()
    paths = schema["paths"]
    assert "/api/v1/orders" in paths and "/api/v1/orders/{order_id}" in paths and "/api/v1/offers" in paths
    ok = paths["/api/v1/orders/{order_id}"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    assert ok["$ref"].endswith("OrderOut")
    assert "HouseholdOnOrder" in schema["components"]["schemas"]
    assert not [p for p in paths if p.startswith("/orders")]  # pages stay out of the API description
