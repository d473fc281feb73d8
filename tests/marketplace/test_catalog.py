"""The catalog and the level policies: seed data, policy versions and history, costs, shelves, admin pages, API."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from marketplace import catalog_services, clock
from marketplace.auth import Principal, Role
from marketplace.errors import Conflict, ValidationFailed
from marketplace.tables import AuditEvent, Category, LevelPolicy
from tests.catalog_data import seed_catalog
from tests.providers.factories import make_areas, make_offering, make_provider

EN = {"accept-language": "en"}
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def cat():
    return await seed_catalog()


async def post_json(client, url, body):
    return await client.post(url, json=body, headers={"x-csrftoken": await client.csrf()})


def admin_principal(user_id: int) -> Principal:
    return Principal(user_id=user_id, role=Role.ADMIN)


POLICY = {
    "monthly_credits": 400,
    "percent": 40,
    "accept_minutes": 20,
    "service_hours": 12,
    "offer_timeout_minutes": 5,
    "routing_priority": 1,
    "reason": "年度预算增加",
}


async def test_the_seed_adds_the_nine_categories_and_three_policies_once(cat):
    await seed_catalog()  # a second run changes nothing
    codes = [r["code"] for r in await Category.select(Category.code).order_by(Category.sort_order)]
    assert codes == [
        "errands",
        "cleaning",
        "medicine",
        "meals",
        "companionship",
        "hospital_escort",
        "haircut",
        "home_repair",
        "bathing",
    ]
    assert await LevelPolicy.count() == 3
    row = await Category.select().where(Category.code == "meals").first()
    assert (row["name_zh"], row["name_en"], row["icon"]) == ("助餐", "Meals", "meals.svg")
    assert row["public_id"] == catalog_services.category_public_id("meals")  # the same id on every install
    assert set(catalog_services.icons()) >= {f"{code}.svg" for code in codes}


async def test_an_admin_change_adds_a_version_and_keeps_the_history(cat, logged_in):
    client, admin = await logged_in("admin")

    response = await post_json(
        client, "/api/v1/level-policies/1", {**POLICY, "fixed": {"meals": 0}, "excluded": ["haircut"]}
    )

    assert response.status_code == 201, response.text
    assert response.json()["version"] == 2
    current = await catalog_services.current_policy(1)
    assert (current.version, current.terms.monthly_credits, current.changed_by) == (2, 400, admin["id"])
    history = (await client.get("/api/v1/level-policies/1/history")).json()
    assert [v["version"] for v in history["items"]] == [2, 1]
    assert history["items"][1]["monthly_credits"] == 300  # the old version is kept as it was
    assert history["items"][0]["cost_rules"] == {
        "percent": 40,
        "fixed": {"meals": 0},
        "excluded": ["haircut"],
    }
    audit = await AuditEvent.select().where(AuditEvent.action == "level_policy.changed")
    assert [(a["actor_user_id"], a["target_id"]) for a in audit] == [(admin["id"], "1:2")]
    # Other levels are untouched.
    assert (await catalog_services.current_policy(2)).version == 1


async def test_a_change_scheduled_for_a_later_date_takes_effect_then(cat, logged_in):
    clock.freeze(datetime(2026, 3, 10, 9, 0, tzinfo=SHANGHAI))
    client, _ = await logged_in("admin")

    response = await client.post_form(
        "/admin/policies/2",
        {
            **{k: str(v) for k, v in POLICY.items()},
            "effective_from": "2026-04-01",
            "fixed_meals": "0",
            "excluded": "haircut",
        },
    )

    assert response.status_code == 302, response.text
    assert (await catalog_services.current_policy(2)).version == 1
    page = await client.get("/admin/policies", headers=EN)
    assert "Version 2 takes effect on" in page.text
    clock.advance(timedelta(days=22))  # 1 April, 09:00
    current = await catalog_services.current_policy(2)
    assert current.version == 2
    assert current.terms.cost_rules.fixed == {"meals": 0}
    assert current.effective_from == datetime(2026, 4, 1, tzinfo=SHANGHAI)


async def test_the_policy_form_shows_every_error_next_to_its_field(cat, logged_in):
    client, _ = await logged_in("admin")
    response = await client.post_form(
        "/admin/policies/1",
        {
            "monthly_credits": "many",
            "percent": "50",
            "accept_minutes": "30",
            "service_hours": "24",
            "offer_timeout_minutes": "10",
            "routing_priority": "1",
            "reason": "",
            "fixed_meals": "free",
        },
        headers=EN,
    )
    assert response.status_code == 422
    assert (
        'id="f-monthly_credits" name="monthly_credits" type="number" value="many" required aria-invalid="true"'
        in response.text
    )
    assert "Write each fixed price as code=credits" in response.text
    assert await LevelPolicy.count() == 3


async def test_a_change_cannot_be_backdated_and_needs_a_reason(cat, make_user):
    admin = await make_user("admin")
    with pytest.raises(ValidationFailed) as exc:
        await catalog_services.change_policy(
            admin_principal(admin["id"]), 1, POLICY, effective_from=clock.now() - timedelta(days=1)
        )
    assert [e.field for e in exc.value.errors] == ["effective_from"]
    with pytest.raises(ValidationFailed) as exc:
        await catalog_services.change_policy(admin_principal(admin["id"]), 1, {**POLICY, "reason": " "})
    assert [e.field for e in exc.value.errors] == ["reason"]


async def test_two_admins_saving_at_once_never_lose_a_version(cat, make_user):
    admin = await make_user("admin")
    p = admin_principal(admin["id"])
    results = await asyncio.gather(
        catalog_services.change_policy(p, 3, {**POLICY, "monthly_credits": 111}),
        catalog_services.change_policy(p, 3, {**POLICY, "monthly_credits": 222}),
        return_exceptions=True,
    )
    saved = [r for r in results if not isinstance(r, BaseException)]
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    rows = await LevelPolicy.select().where(LevelPolicy.level == 3).order_by(LevelPolicy.version)
    assert [r["version"] for r in rows] == list(range(1, 2 + len(saved)))
    assert {r["monthly_credits"] for r in rows[1:]} == {s.terms.monthly_credits for s in saved}


@pytest.mark.parametrize("role", ["steward", "resident", "provider_staff"])
async def test_only_admins_change_policies_and_categories(cat, logged_in, role):
    client, _ = await logged_in(role)
    assert (await post_json(client, "/api/v1/level-policies/1", POLICY)).status_code == 403
    assert (await post_json(client, "/api/v1/categories", {"code": "laundry"})).status_code == 403
    assert (await client.get("/admin/policies")).status_code == 403
    assert (await client.post_form("/admin/catalog/new", {"code": "laundry"})).status_code == 403
    assert await LevelPolicy.count() == 3
    assert await AuditEvent.count().where(AuditEvent.action == "permission_denied") == 4


async def test_what_a_category_costs_follows_the_policy_in_force(cat, make_user, logged_in):
    admin = await make_user("admin")
    assert await catalog_services.cost_for(cat["cleaning"], 1) == 15  # 30 at 50 %
    assert await catalog_services.cost_for(cat["cleaning"], 3) == 30
    assert await catalog_services.cost_for(cat["meals"], 2, units=3) == 21  # ceil(8 * 0.8) = 7, three meals

    await catalog_services.change_policy(
        admin_principal(admin["id"]), 1, {**POLICY, "fixed": {"meals": 0}, "excluded": ["haircut"]}
    )
    assert await catalog_services.cost_for(cat["meals"], 1) == 0
    assert await catalog_services.cost_for(cat["haircut"], 1) is None
    assert await catalog_services.cost_for(cat["cleaning"], 1) == 12  # 30 at 40 %

    client, _ = await logged_in("resident")
    body = (await client.get(f"/api/v1/categories/{cat['haircut']}/cost", params={"level": 1})).json()
    assert body == {"category_id": cat["haircut"], "level": 1, "units": 1, "credits": None, "covered": False}
    assert (
        await client.get(f"/api/v1/categories/{cat['haircut']}/cost", params={"level": 4})
    ).status_code == 400


async def test_the_shelves_show_costs_and_who_serves_the_community(cat, make_client):
    areas = await make_areas()
    here, there = areas["communities"]["尧化门社区"], areas["communities"]["仙林社区"]
    for status in ("verified", "verified", "pending"):
        pid = await make_provider(status=status)
        await make_offering(pid, cat["cleaning"], [here])
    client = make_client(**EN)

    page = await client.get("/catalog", params={"community": here, "level": 1})

    assert page.status_code == 200
    assert "Providers are counted for 尧化门社区" in page.text
    assert "15 credits per visit" in page.text  # cleaning at level 1
    assert "2 providers serve this community" in page.text  # the pending one is not counted
    assert "No provider serves this community yet." in page.text  # the other categories
    everyone = await client.get("/catalog", params={"community": there})
    assert "Level 1: <strong>15</strong>" in everyone.text and "Level 3: <strong>30</strong>" in everyone.text
    assert "2 providers serve" not in everyone.text


async def test_a_steward_sees_their_own_community_first(cat, logged_in):
    from marketplace import accounts
    from marketplace.auth import LinkKind

    areas = await make_areas()
    community = areas["communities"]["新尧社区"]
    client, steward = await logged_in("steward")
    await accounts.link(steward["id"], LinkKind.COMMUNITY, community)
    body = (await client.get("/api/v1/catalog")).json()
    assert body["community_id"] == community
    assert body["level"] is None
    assert all(shelf["providers"] == 0 for shelf in body["shelves"])


async def test_the_category_page_lists_verified_offerings_and_hides_volunteers_names(
    cat, make_client, logged_in
):
    areas = await make_areas()
    here = areas["communities"]["尧化门社区"]
    team = await make_provider(name="尧化青年志愿队", kind="volunteer_team")
    volunteer = await make_provider(name="陈志愿", kind="individual_volunteer", team=team)
    pending = await make_provider(name="待审核协会", status="pending")
    for pid in (volunteer, pending):
        await make_offering(pid, cat["errands"], [here], credit_cost=6)

    resident = make_client(**EN)
    page = await resident.get("/catalog/errands", params={"community": here, "level": 2})
    assert "Individual volunteer · 尧化青年志愿队" in page.text
    assert "陈志愿" not in page.text
    assert "待审核协会" not in page.text
    assert "Level 2: 5 credits per visit" in page.text  # the volunteer asks 6, level 2 pays 80 %
    assert "Rating: no data yet" in page.text

    steward, _ = await logged_in("steward")
    assert "陈志愿" in (await steward.get("/catalog/errands", params={"community": here})).text
    assert (await resident.get("/catalog/no-such-thing")).status_code == 404


async def test_the_category_api_is_paginated_and_filterable(cat, logged_in):
    client, _ = await logged_in("resident")
    first = (await client.get("/api/v1/categories", params={"per_page": 4, "page": 3})).json()
    assert (first["total"], first["pages"], first["page"], len(first["items"])) == (9, 3, 3, 1)
    assert first["items"][0]["code"] == "bathing"
    found = (await client.get("/api/v1/categories", params={"search": "清洁"})).json()
    assert found["total"] == 0
    found = (await client.get("/api/v1/categories", params={"search": "clean"})).json()
    assert [c["code"] for c in found["items"]] == ["cleaning"]
    assert (await client.get("/api/v1/categories", params={"active": "false"})).json()["total"] == 0
    one = (await client.get(f"/api/v1/categories/{cat['meals']}")).json()
    assert one["icon_url"] == "/static/icons/meals.svg" and one["routing"] == "direct"
    assert (await client.get("/api/v1/categories/99999")).status_code == 404
    shelves = (await client.get("/api/v1/catalog", params={"level": 1})).json()
    cleaning = next(s for s in shelves["shelves"] if s["category"]["code"] == "cleaning")
    assert cleaning["my_cost"] == {"level": 1, "credits": 15, "covered": True}
    assert cleaning["providers"] is None  # no community chosen


async def test_an_admin_adds_edits_and_hides_a_category_in_the_browser(cat, logged_in):
    client, _ = await logged_in("admin")
    bad = await client.post_form(
        "/admin/catalog/new", {"code": "Laundry!", "name_zh": "", "routing": "pool"}, headers=EN
    )
    assert bad.status_code == 422
    assert "Enter the Chinese name." in bad.text and 'aria-invalid="true"' in bad.text

    created = await client.post_form(
        "/admin/catalog/new",
        {
            "code": "laundry",
            "name_zh": "洗衣",
            "name_en": "Laundry",
            "icon": "generic.svg",
            "routing": "pool",
            "unit": "visit",
            "credit_cost": "12",
            "sort_order": "95",
            "is_active": "on",
        },
    )
    assert created.status_code == 302
    row = await Category.select().where(Category.code == "laundry").first()
    assert row["public_id"] == catalog_services.category_public_id("laundry")
    assert "洗衣" in (await client.get("/catalog")).text

    edited = await client.post_form(
        f"/admin/catalog/{row['id']}",
        {
            "name_zh": "洗衣服务",
            "name_en": "Laundry",
            "icon": "generic.svg",
            "routing": "direct",
            "unit": "visit",
            "credit_cost": "15",
            "sort_order": "95",
        },  # is_active not ticked: hidden
    )
    assert edited.status_code == 302
    row = await Category.select().where(Category.code == "laundry").first()
    assert (row["name_zh"], row["routing"], row["is_active"]) == ("洗衣服务", "direct", False)
    assert "洗衣服务" not in (await client.get("/catalog")).text
    assert "洗衣服务" in (await client.get("/admin/catalog")).text
    actions = [a["action"] for a in await AuditEvent.select(AuditEvent.action).order_by(AuditEvent.id)]
    assert actions[-2:] == ["category.created", "category.updated"]


async def test_the_api_creates_and_patches_categories(cat, logged_in):
    client, _ = await logged_in("admin")
    response = await post_json(
        client,
        "/api/v1/categories",
        {
            "code": "laundry",
            "name_zh": "洗衣",
            "name_en": "Laundry",
            "routing": "pool",
            "unit": "visit",
            "credit_cost": 12,
        },
    )
    assert response.status_code == 201, response.text
    category_id = response.json()["id"]
    again = await post_json(
        client,
        "/api/v1/categories",
        {
            "code": "laundry",
            "name_zh": "x",
            "name_en": "x",
            "routing": "pool",
            "unit": "visit",
            "credit_cost": 1,
        },
    )
    assert again.status_code == 422
    assert again.json()["errors"][0]["field"] == "code"
    patched = await client.patch(
        f"/api/v1/categories/{category_id}",
        json={"credit_cost": 9},
        headers={"x-csrftoken": await client.csrf()},
    )
    assert patched.status_code == 200
    assert (patched.json()["credit_cost"], patched.json()["name_zh"], patched.json()["is_active"]) == (
        9,
        "洗衣",
        True,
    )


async def test_the_openapi_schema_documents_the_catalog(client):
    schema = (await client.get("/schema/openapi.json")).json()
    for path in (
        "/api/v1/categories",
        "/api/v1/catalog",
        "/api/v1/level-policies",
        "/api/v1/level-policies/{level}/history",
    ):
        assert path in schema["paths"], path
    assert {"CategoryOut", "PolicyOut", "PolicyIn", "CatalogOut"} <= set(schema["components"]["schemas"])


async def test_a_resident_sees_costs_for_their_own_household(cat, logged_in):
    from households.tables import Household
    from marketplace import accounts
    from marketplace.auth import LinkKind

    areas = await make_areas()
    community = areas["communities"]["新尧社区"]
    provider = await make_provider()
    await make_offering(provider, cat["meals"], [community])
    household = Household(code="HH-TEST-1", community=community, category="dibao", level=1)
    await household.save()
    client, resident = await logged_in("resident")
    await accounts.link(resident["id"], LinkKind.HOUSEHOLD, household.id)
    client.headers.update(EN)

    body = (await client.get("/api/v1/catalog")).json()
    assert (body["community_id"], body["level"]) == (community, 1)
    meals = next(s for s in body["shelves"] if s["category"]["code"] == "meals")
    assert (meals["my_cost"]["credits"], meals["providers"]) == (4, 1)
    page = await client.get("/catalog")
    assert "Costs are shown for your household's need level:" in page.text
    assert "4 credits per meal" in page.text
    # Choosing another level on the page shows that level instead
    assert "8 credits per meal" in (await client.get("/catalog", params={"level": 3})).text


async def test_searching_a_code_with_an_underscore_finds_it_on_both_backends(logged_in):
    client, _ = await logged_in("resident")
    found = (await client.get("/api/v1/categories?search=home_repair")).json()
    assert [c["code"] for c in found["items"]] == ["home_repair"]
    assert (await client.get("/api/v1/categories?search=100%25")).json()["items"] == []
