"""The demo data: the demo accounts act for their providers, which can take orders."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from marketplace.demo import seed_demo
from marketplace.tables import Category, User, UserLink
from providers.candidates import candidates
from providers.tables import Provider
from tests.catalog_data import seed_catalog

SATURDAY_10 = datetime(2026, 12, 5, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


async def test_the_demo_accounts_act_for_demo_providers(client):
    await seed_catalog()
    await seed_demo()

    async def provider_of(phone: str) -> dict:
        user = await User.select(User.id).where(User.phone == phone).first()
        link = (
            await UserLink.select()
            .where((UserLink.user == user["id"]) & (UserLink.kind == "provider"))
            .first()
        )
        return await Provider.select().where(Provider.id == int(link["target"])).first()

    centre = await provider_of("13800000003")
    assert (centre["kind"], centre["status"]) == ("social_organization", "verified")
    volunteer = await provider_of("13800000004")
    assert volunteer["kind"] == "individual_volunteer" and volunteer["team"] is not None
    assert await Provider.count().where(Provider.status == "pending") == 1

    errands = (await Category.select(Category.id).where(Category.code == "errands").first())["id"]
    from households.tables import Community

    community = (await Community.select(Community.id).where(Community.name == "尧化门社区").first())["id"]
    found = {
        c.provider_id for c in await candidates(errands, community, SATURDAY_10, SATURDAY_10.replace(hour=11))
    }
    assert {volunteer["id"], volunteer["team"]} <= found
    assert (await client.get("/hsds/organizations")).json()["total_items"] == 4
