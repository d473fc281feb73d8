"""The provider portal: a provider edits only itself; offerings, hours, staff, time bank and figures."""

from __future__ import annotations

import pytest

from marketplace import accounts
from marketplace.auth import LinkKind
from marketplace.errors import ValidationFailed
from marketplace.tables import AuditEvent, UserLink
from providers import timebank
from providers.tables import Offering, OpeningHours, Provider, ProviderStats, ServiceArea, Worker
from tests.catalog_data import seed_catalog
from tests.providers.factories import make_areas, make_offering, make_provider

EN = {"accept-language": "en"}


@pytest.fixture
async def world(logged_in):
    categories = await seed_catalog()
    areas = await make_areas()
    mine = await make_provider(name="我的机构")
    other = await make_provider(name="别人的机构")
    other_offering = await make_offering(other, categories["cleaning"], [areas["communities"]["仙林社区"]])
    client, user = await logged_in("provider_staff")
    await accounts.link(user["id"], LinkKind.PROVIDER, mine)
    client.headers.update(EN)
    return {
        "cat": categories,
        "com": areas["communities"],
        "mine": mine,
        "other": other,
        "other_offering": other_offering,
        "client": client,
        "user": user,
    }


def offering_form(world, **changes):
    return {
        "category_id": str(world["cat"]["meals"]),
        "title": "助餐送餐",
        "unit": "meal",
        "duration_minutes": "30",
        "credit_cost": "",
        "capacity": "10",
        "community_ids": [str(world["com"]["尧化门社区"]), str(world["com"]["新尧社区"])],
        "open_0_0": "10:30",
        "close_0_0": "13:00",
        "open_0_1": "16:30",
        "close_0_1": "18:30",
        "open_5_0": "10:30",
        "close_5_0": "13:00",
        "is_active": "on",
        **changes,
    }


async def test_a_provider_sees_and_edits_only_itself(world):
    client, other = world["client"], world["other"]
    token = {"x-csrftoken": await client.csrf()}
    # Pages of another provider answer 404, as if it did not exist
    for path in (
        "",
        "/offerings",
        "/offerings/new",
        f"/offerings/{world['other_offering']}",
        "/staff",
        "/hours",
    ):
        assert (await client.get(f"/portal/{other}{path}")).status_code == 404, path
    assert (await client.post_form(f"/portal/{other}", {"name": "改名"})).status_code == 404
    assert (await client.post_form(f"/portal/{other}/offerings/new", offering_form(world))).status_code == 404
    assert (
        await client.post_form(
            f"/portal/{world['mine']}/offerings/{world['other_offering']}", offering_form(world)
        )
    ).status_code == 404
    # ... and so does the API
    assert (
        await client.patch(f"/api/v1/providers/{other}", json={"name": "改名"}, headers=token)
    ).status_code == 404
    assert (
        await client.patch(
            f"/api/v1/offerings/{world['other_offering']}", json={"capacity": 99}, headers=token
        )
    ).status_code == 404
    assert (
        await client.post(
            f"/api/v1/providers/{other}/staff", json={"name": "x", "phone": "13912345678"}, headers=token
        )
    ).status_code == 404
    assert (await client.get(f"/api/v1/providers/{other}/staff")).status_code == 404
    assert (await client.get(f"/api/v1/providers/{other}/history")).status_code == 404
    row = await Provider.select().where(Provider.id == other).first()
    assert row["name"] == "别人的机构"
    assert (await Offering.select(Offering.capacity).where(Offering.id == world["other_offering"]).first())[
        "capacity"
    ] == 3
    # Its own provider is fine
    assert (await client.get(f"/portal/{world['mine']}")).status_code == 200
    patched = await client.patch(
        f"/api/v1/providers/{world['mine']}", json={"description": "助餐"}, headers=token
    )
    assert patched.status_code == 200 and patched.json()["description"] == "助餐"


async def test_others_see_a_verified_provider_without_its_contacts(world, logged_in):
    resident, _ = await logged_in("resident")
    public = (await resident.get(f"/api/v1/providers/{world['other']}")).json()
    assert public["name"] == "别人的机构"
    assert "contact_phone" not in public and "contact_name" not in public and public["can_manage"] is False
    steward, _ = await logged_in("steward")
    assert (await steward.get(f"/api/v1/providers/{world['other']}")).json()["contact_phone"] == "13900001111"
    pending = await make_provider(name="待审核", status="pending")
    assert (await resident.get(f"/api/v1/providers/{pending}")).status_code == 404
    assert (await resident.get(f"/api/v1/providers/{world['other']}/offerings")).json()[0][
        "category_code"
    ] == "cleaning"
    assert "active_orders" not in (await resident.get(f"/api/v1/offerings/{world['other_offering']}")).json()
    listed = (await resident.get("/api/v1/providers", params={"status": "pending"})).json()
    assert listed["total"] == 0  # only administrators list pending providers


async def test_the_portal_is_for_provider_accounts(world, logged_in):
    resident, _ = await logged_in("resident")
    assert (await resident.get(f"/portal/{world['mine']}")).status_code == 403
    admin, _ = await logged_in("admin")
    assert (await admin.get(f"/portal/{world['other']}")).status_code == 200  # administrators act for all


async def test_a_provider_offers_a_service_with_areas_and_hours(world):
    client, mine = world["client"], world["mine"]

    response = await client.post_form(f"/portal/{mine}/offerings/new", offering_form(world))

    assert response.status_code == 302, response.text
    offering = await Offering.select().where(Offering.provider == mine).first()
    assert (offering["unit"], offering["credit_cost"], offering["capacity"], offering["title"]) == (
        "meal",
        8,
        10,
        "助餐送餐",
    )
    areas = await ServiceArea.select(ServiceArea.community, ServiceArea.category).where(
        ServiceArea.offering == offering["id"]
    )
    assert sorted(a["community"] for a in areas) == sorted(
        [world["com"]["尧化门社区"], world["com"]["新尧社区"]]
    )
    assert {a["category"] for a in areas} == {world["cat"]["meals"]}
    hours = (
        await OpeningHours.select()
        .where(OpeningHours.offering == offering["id"])
        .order_by(OpeningHours.weekday)
        .order_by(OpeningHours.opens_at)
    )
    assert [(h["weekday"], h["opens_at"], h["closes_at"]) for h in hours] == [
        (0, 630, 780),
        (0, 990, 1110),
        (5, 630, 780),
    ]
    page = await client.get(f"/portal/{mine}/offerings")
    assert "Monday 10:30–13:00, 16:30–18:30" in page.text and "Saturday 10:30–13:00" in page.text
    assert "Orders at once: 0 of 10 in progress" in page.text

    # Editing replaces the areas and hours; the category stays
    response = await client.post_form(
        f"/portal/{mine}/offerings/{offering['id']}",
        offering_form(
            world,
            category_id=str(world["cat"]["cleaning"]),
            community_ids=str(world["com"]["仙林社区"]),
            open_0_1="",
            close_0_1="",
            credit_cost="6",
        ),
    )
    assert response.status_code == 302
    edited = await Offering.select().where(Offering.id == offering["id"]).first()
    assert (edited["category"], edited["credit_cost"]) == (world["cat"]["meals"], 6)
    assert [
        a["community"] for a in await ServiceArea.select().where(ServiceArea.offering == offering["id"])
    ] == [world["com"]["仙林社区"]]
    assert await OpeningHours.count().where(OpeningHours.offering == offering["id"]) == 2
    assert [
        a["action"]
        for a in await AuditEvent.select(AuditEvent.action).where(AuditEvent.target_type == "offering")
    ] == [
        "offering.created",
        "offering.updated",
    ]


async def test_offering_errors_are_shown_next_to_the_fields(world):
    client, mine = world["client"], world["mine"]
    response = await client.post_form(
        f"/portal/{mine}/offerings/new",
        offering_form(
            world, credit_cost="50", community_ids="", open_0_1="12:00", close_0_1="14:00", close_5_0="9:00"
        ),
    )
    assert response.status_code == 422
    text = response.text
    assert "Choose at least one community you serve." in text
    assert "Opening times of one day may not overlap." in text
    assert "The closing time must be after the opening time." in text
    assert 'aria-describedby="f-schedule_0-error"' in text
    assert await Offering.count() == 1  # only the other provider's

    over = await client.post_form(f"/portal/{mine}/offerings/new", offering_form(world, credit_cost="50"))
    assert over.status_code == 422 and "At most 8 credits" in over.text
    await client.post_form(f"/portal/{mine}/offerings/new", offering_form(world))
    twice = await client.post_form(f"/portal/{mine}/offerings/new", offering_form(world))
    assert twice.status_code == 422 and "You offer this category already" in twice.text


async def test_the_offering_api_round_trips(world):
    client, mine = world["client"], world["mine"]
    token = {"x-csrftoken": await client.csrf()}
    body = {
        "category_id": world["cat"]["errands"],
        "duration_minutes": 45,
        "capacity": 2,
        "community_ids": [world["com"]["马群社区"]],
        "schedule": [{"weekday": 6, "opens": "09:00", "closes": "24:00"}],
    }
    created = await client.post(f"/api/v1/providers/{mine}/offerings", json=body, headers=token)
    assert created.status_code == 201, created.text
    offering = created.json()
    assert (offering["unit"], offering["credit_cost"], offering["active_orders"]) == ("visit", 10, 0)
    assert offering["schedule"] == [{"weekday": 6, "opens": "09:00", "closes": "24:00"}]
    assert offering["areas"] == [{"id": world["com"]["马群社区"], "name": "马群社区"}]
    patched = await client.patch(
        f"/api/v1/offerings/{offering['id']}", json={"is_active": False}, headers=token
    )
    assert patched.json()["is_active"] is False
    assert patched.json()["schedule"] == offering["schedule"]  # not sent, so kept
    bad = await client.patch(
        f"/api/v1/offerings/{offering['id']}",
        json={"schedule": [{"weekday": 1, "opens": "9", "closes": "8"}]},
        headers=token,
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "schedule_1"


async def test_profile_changes_and_the_order_switch(world):
    client, mine = world["client"], world["mine"]
    response = await client.post_form(
        f"/portal/{mine}",
        {"name": "我的机构", "contact_name": "新联系人", "contact_phone": "13911112222", "latitude": "32.1"},
    )
    assert response.status_code == 422 and "Enter both the latitude and the longitude" in response.text
    response = await client.post_form(
        f"/portal/{mine}",
        {
            "name": "我的机构",
            "contact_name": "新联系人",
            "contact_phone": "13911112222",
            "latitude": "32.1",
            "longitude": "118.9",
        },  # "is_active" not ticked: paused
    )
    assert response.status_code == 302
    row = await Provider.select().where(Provider.id == mine).first()
    assert (row["contact_name"], row["contact_phone"], row["is_active"], row["latitude"]) == (
        "新联系人",
        "13911112222",
        False,
        32.1,
    )
    assert "Not taking orders" in (await client.get(f"/portal/{mine}")).text
    audit = await AuditEvent.select().where(AuditEvent.action == "provider.updated").first()
    assert "13911112222" not in str(audit) and "新联系人" not in str(
        audit
    )  # field names only, never the values


async def test_a_verified_provider_cannot_change_its_credit_code(world):
    from providers.rules import credit_code_check_char

    code = "91320113MA1N2K3L4"
    await Provider.update({Provider.credit_code: code + credit_code_check_char(code)}).where(
        Provider.id == world["mine"]
    )
    other = "91320113MA1N2K3L5"
    response = await world["client"].post_form(
        f"/portal/{world['mine']}",
        {
            "name": "我的机构",
            "contact_name": "x",
            "credit_code": other + credit_code_check_char(other),
            "is_active": "on",
        },
    )
    assert response.status_code == 422
    assert "can only be changed by the bureau" in response.text


async def test_staff_with_and_without_a_login(world, make_client):
    client, mine = world["client"], world["mine"]
    response = await client.post_form(
        f"/portal/{mine}/staff", {"name": "刘护理员", "phone": "13912345001", "job_title": "助浴员"}
    )
    assert response.status_code == 302
    response = await client.post_form(
        f"/portal/{mine}/staff",
        {"name": "周协调", "phone": "13912345002", "login": "on", "password": "a-new-password"},
    )
    assert response.status_code == 302
    workers = await Worker.select().where(Worker.provider == mine).order_by(Worker.id)
    assert [(w["name"], w["user"] is not None) for w in workers] == [("刘护理员", False), ("周协调", True)]
    colleague = make_client(**EN)
    await colleague.login("13912345002", "a-new-password")
    assert (await colleague.get(f"/portal/{mine}")).status_code == 200
    page = await client.get(f"/portal/{mine}/staff")
    assert "139****5001" in page.text and "13912345001" not in page.text

    # Removing: a confirmation first, then the login no longer opens the portal
    confirm = await client.get(f"/portal/{mine}/staff/{workers[1]['id']}/remove")
    assert "Remove 周协调?" in confirm.text
    await client.post_form(f"/portal/{mine}/staff/{workers[1]['id']}/remove")
    assert not await UserLink.exists().where(
        (UserLink.user == workers[1]["user"]) & (UserLink.kind == "provider")
    )
    assert (await colleague.get(f"/portal/{mine}")).status_code == 404
    assert (await Worker.select(Worker.is_active).where(Worker.id == workers[1]["id"]).first())[
        "is_active"
    ] is False


async def test_the_last_login_of_a_provider_cannot_be_removed(world):
    client, mine, user = world["client"], world["mine"], world["user"]
    worker = Worker(provider=mine, name="我", phone=user["phone"], user=user["id"])
    await worker.save()
    response = await client.post_form(f"/portal/{mine}/staff/{worker.id}/remove")
    assert response.status_code == 422
    assert "last account that can manage the provider" in response.text
    assert (await client.get(f"/portal/{mine}")).status_code == 200


async def test_the_time_bank_logs_each_order_once(world, logged_in):
    team = await make_provider(name="志愿队", kind="volunteer_team")
    client, volunteer = await logged_in("volunteer")
    await accounts.link(volunteer["id"], LinkKind.PROVIDER, team)
    client.headers.update(EN)
    assert "No hours logged yet." in (await client.get(f"/portal/{team}/hours")).text

    key = timebank.order_key(41, volunteer["id"])
    assert (
        await timebank.log_hours(
            provider_id=team,
            user_id=volunteer["id"],
            order_id=41,
            minutes=90,
            key=key,
            category_id=world["cat"]["errands"],
        )
        is True
    )
    assert (
        await timebank.log_hours(provider_id=team, user_id=volunteer["id"], order_id=41, minutes=90, key=key)
        is False
    )
    await timebank.log_hours(
        provider_id=team,
        user_id=volunteer["id"],
        order_id=42,
        minutes=30,
        key=timebank.order_key(42, volunteer["id"]),
    )
    page = await client.get(f"/portal/{team}/hours")
    assert "2 hours" in page.text and "Errands" in page.text
    body = (await client.get(f"/api/v1/providers/{team}/hours")).json()
    assert (body["total_minutes"], body["total"]) == (120, 2)
    with pytest.raises(ValidationFailed):
        await timebank.log_hours(provider_id=team, minutes=0, key="x")


async def test_figures_say_no_data_until_orders_fill_them(world, logged_in):
    client, mine = world["client"], world["mine"]
    assert "No data yet" in (await client.get(f"/portal/{mine}")).text
    empty = (await client.get(f"/api/v1/providers/{mine}/stats")).json()
    assert empty == {
        "acceptance_rate": None,
        "median_accept_seconds": None,
        "completion_rate": None,
        "no_shows": None,
        "average_rating": None,
        "rating_count": 0,
    }
    await ProviderStats.insert(
        ProviderStats(
            provider=mine,
            offers_total=4,
            offers_accepted=3,
            median_accept_seconds=240,
            orders_total=3,
            orders_completed=3,
            rating_count=2,
            rating_sum=9,
        )
    )
    page = await client.get(f"/portal/{mine}")
    assert "75%" in page.text and "4.5 of 5 from 2 ratings" in page.text
    assert (await client.get(f"/api/v1/providers/{mine}/stats")).json()["acceptance_rate"] == 0.75


async def test_an_individual_volunteers_starting_point_is_shown_only_to_those_who_see_contacts(logged_in):
    cat = await seed_catalog()
    com = (await make_areas())["communities"]
    team = await make_provider(name="尧化青年志愿服务队", kind="volunteer_team")
    volunteer = await make_provider(name="陈志愿者", kind="individual_volunteer", team=team)
    offering = await make_offering(volunteer, cat["companionship"], [com["尧化门社区"]])
    await Offering.update({Offering.latitude: 32.1, Offering.longitude: 118.9}).where(Offering.id == offering)
    for role, shown in (("resident", False), ("provider_staff", False), ("steward", True), ("admin", True)):
        client, _ = await logged_in(role)
        listed = (await client.get(f"/api/v1/providers/{volunteer}/offerings")).json()
        one = (await client.get(f"/api/v1/offerings/{offering}")).json()
        for body in (listed[0], one):
            assert (body["latitude"] is not None) is shown, role
            assert (body["longitude"] is not None) is shown, role
