"""Registration by the provider, verification by an administrator, and what each step allows."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from marketplace.tables import AuditEvent, User, UserLink
from providers.candidates import candidates
from providers.rules import credit_code_check_char
from providers.tables import Provider, ProviderEvent, Worker
from tests.catalog_data import seed_catalog
from tests.providers.factories import make_areas

EN = {"accept-language": "en"}
MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
FIRST17 = "52320113MJ5010203"
CREDIT_CODE = FIRST17 + credit_code_check_char(FIRST17)
ORG = {
    "kind": "social_organization",
    "name": "仙林助老服务中心",
    "description": "助餐、保洁",
    "credit_code": CREDIT_CODE,
    "contact_name": "赵主任",
    "address": "南京市栖霞区文苑路9号",
    "phone": "13912340001",
    "password": "a-good-password",
    "consent": "on",
}


@pytest.fixture
async def world():
    categories = await seed_catalog()
    areas = await make_areas()
    return {"cat": categories, "com": areas["communities"]}


async def register(client, **changes) -> int:
    response = await client.post_form("/providers/register", {**ORG, **changes}, headers=EN)
    assert response.status_code == 200, response.text
    assert "Registration received" in response.text
    return (await Provider.select(Provider.id).order_by(Provider.id, ascending=False).first())["id"]


async def login(make_client, phone: str, password: str = ORG["password"]):
    client = make_client(**EN)
    response = await client.login(phone, password)
    assert response.status_code == 302, response.text
    return client


async def offer_cleaning(client, provider_id: int, world) -> None:
    response = await client.post_form(
        f"/portal/{provider_id}/offerings/new",
        {
            "category_id": str(world["cat"]["cleaning"]),
            "unit": "visit",
            "duration_minutes": "120",
            "capacity": "2",
            "community_ids": str(world["com"]["尧化门社区"]),
            "open_0_0": "08:00",
            "close_0_0": "18:00",
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.text


async def cleaners(world) -> list[int]:
    found = await candidates(
        world["cat"]["cleaning"], world["com"]["尧化门社区"], MONDAY_10, MONDAY_10 + timedelta(hours=2)
    )
    return [c.provider_id for c in found]


async def test_a_provider_registers_and_waits_for_verification(world, make_client):
    provider_id = await register(make_client())

    row = await Provider.select().where(Provider.id == provider_id).first()
    assert (row["status"], row["kind"], row["credit_code"], row["contact_phone"]) == (
        "pending",
        "social_organization",
        CREDIT_CODE,
        "13912340001",
    )
    user = await User.select().where(User.phone == "13912340001").first()
    assert user["role"] == "provider_staff"
    links = await UserLink.select().where(UserLink.user == user["id"])
    assert [(link["kind"], link["target"]) for link in links] == [("provider", str(provider_id))]
    assert (await Worker.select(Worker.user).where(Worker.provider == provider_id).first())["user"] == user[
        "id"
    ]
    events = await ProviderEvent.select().where(ProviderEvent.provider == provider_id)
    assert [(e["action"], e["to_status"]) for e in events] == [("register", "pending")]
    assert await AuditEvent.count().where(AuditEvent.action == "provider.registered") == 1

    client = await login(make_client, "13912340001")
    portal = await client.get("/portal", follow_redirects=True)
    assert "Waiting for verification" in portal.text


async def test_an_individual_volunteer_gets_a_volunteer_account_and_may_name_a_team(
    world, make_client, make_user
):
    from tests.providers.factories import make_provider

    team = await make_provider(name="尧化青年志愿队", kind="volunteer_team")
    provider_id = await register(
        make_client(),
        kind="individual_volunteer",
        name="陈志愿",
        phone="13912340002",
        credit_code="",
        team_id=str(team),
    )
    row = await Provider.select().where(Provider.id == provider_id).first()
    assert (row["kind"], row["team"], row["address"]) == ("individual_volunteer", team, "")
    assert (await User.select(User.role).where(User.phone == "13912340002").first())["role"] == "volunteer"
    assert await Worker.count().where(Worker.provider == provider_id) == 0


async def test_registration_errors_are_shown_next_to_the_fields(world, make_client):
    response = await make_client().post_form(
        "/providers/register",
        {
            "kind": "company",
            "name": "",
            "credit_code": "91440300708461136A",
            "phone": "123",
            "password": "short",
        },
        headers=EN,
    )
    assert response.status_code == 422
    for message in (
        "Enter the name.",
        "This is not a valid unified social credit code",
        "Enter an 11-digit mainland mobile number",
        "The password must have at least 8 characters.",
        "Please agree so that the bureau may check",
    ):
        assert message in response.text, message
    assert 'id="f-credit_code" name="credit_code" type="text" value="91440300708461136A"' in response.text
    assert "short" not in response.text  # the password is never sent back
    assert await Provider.count() == 0
    assert await User.count() == 0


async def test_registration_is_rate_limited_per_address(world, make_client):
    client = make_client()
    for n in range(10):
        response = await client.post_form("/providers/register", {"kind": "company", "name": f"x{n}"})
        assert response.status_code == 422
    response = await client.post_form("/providers/register", ORG)
    assert response.status_code == 429
    assert await Provider.count() == 0


async def test_the_verification_workflow_decides_who_receives_orders(world, make_client, logged_in):
    # Given a registered provider that has described its cleaning service
    provider_id = await register(make_client())
    staff = await login(make_client, "13912340001")
    await offer_cleaning(staff, provider_id, world)
    admin, admin_user = await logged_in("admin")
    assert await cleaners(world) == []  # pending: never a candidate

    # A verification without the documents checked is refused
    response = await admin.post_form(
        f"/admin/providers/{provider_id}/decision", {"action": "verify"}, headers=EN
    )
    assert response.status_code == 422
    assert "Tick the documents you checked." in response.text

    # When the administrator verifies it, with the documents noted
    response = await admin.post_form(
        f"/admin/providers/{provider_id}/decision",
        {"action": "verify", "documents": ["registration_certificate", "credit_code"], "note": "现场核验"},
    )
    assert response.status_code == 302
    assert await cleaners(world) == [provider_id]

    # Suspended: no orders, the reason shown to the provider
    response = await admin.post_form(
        f"/admin/providers/{provider_id}/decision", {"action": "suspend", "reason": "服务投诉待核查"}
    )
    assert response.status_code == 302
    assert await cleaners(world) == []
    assert "服务投诉待核查" in (await staff.get(f"/portal/{provider_id}")).text

    # Reinstated: orders again
    await admin.post_form(f"/admin/providers/{provider_id}/decision", {"action": "reinstate"})
    assert await cleaners(world) == [provider_id]

    events = (
        await ProviderEvent.select().where(ProviderEvent.provider == provider_id).order_by(ProviderEvent.id)
    )
    assert [(e["action"], e["from_status"], e["to_status"]) for e in events] == [
        ("register", "", "pending"),
        ("verify", "pending", "verified"),
        ("suspend", "verified", "suspended"),
        ("reinstate", "suspended", "verified"),
    ]
    assert events[1]["by_user"] == admin_user["id"]
    audited = [
        a["action"]
        for a in await AuditEvent.select(AuditEvent.action).where(AuditEvent.target_type == "provider")
    ]
    assert audited == ["provider.registered", "provider.verify", "provider.suspend", "provider.reinstate"]
    page = await admin.get(f"/admin/providers/{provider_id}", headers=EN)
    assert "Unified social credit code checked on the public register" in page.text
    assert "现场核验" in page.text


async def test_a_refused_provider_corrects_its_profile_and_asks_again(world, make_client, logged_in):
    provider_id = await register(make_client())
    admin, _ = await logged_in("admin")
    without_reason = await admin.post_form(
        f"/admin/providers/{provider_id}/decision", {"action": "refuse"}, headers=EN
    )
    assert without_reason.status_code == 422
    assert "Write the reason" in without_reason.text

    await admin.post_form(
        f"/admin/providers/{provider_id}/decision", {"action": "refuse", "reason": "地址与登记证书不符"}
    )
    staff = await login(make_client, "13912340001")
    portal = await staff.get(f"/portal/{provider_id}")
    assert "Not approved" in portal.text and "地址与登记证书不符" in portal.text

    # A verification of a refused provider is out of order
    stale = await admin.post_form(
        f"/admin/providers/{provider_id}/decision",
        {"action": "verify", "documents": "credit_code"},
        headers=EN,
    )
    assert stale.status_code == 409

    await staff.post_form(
        f"/portal/{provider_id}", {**ORG, "address": "南京市栖霞区文苑路19号", "is_active": "on"}
    )
    response = await staff.post_form(f"/portal/{provider_id}/resubmit")
    assert response.status_code == 302
    row = await Provider.select().where(Provider.id == provider_id).first()
    assert (row["status"], row["status_reason"], row["address"]) == ("pending", "", "南京市栖霞区文苑路19号")


async def test_only_administrators_decide(world, make_client, logged_in):
    provider_id = await register(make_client())
    staff = await login(make_client, "13912340001")
    steward, _ = await logged_in("steward")
    for client in (staff, steward):
        response = await client.post(
            f"/api/v1/providers/{provider_id}/decisions",
            json={"action": "verify", "documents": ["credit_code"]},
            headers={"x-csrftoken": await client.csrf()},
        )
        assert response.status_code == 403
    assert (await Provider.select(Provider.status).where(Provider.id == provider_id).first())[
        "status"
    ] == "pending"


async def test_the_api_registers_and_decides(world, make_client, logged_in):
    anonymous = make_client()
    body = {k: v for k, v in ORG.items() if k != "consent"} | {"consent": True, "phone": "13912340009"}
    response = await anonymous.post(
        "/api/v1/providers/register", json=body, headers={"x-csrftoken": await anonymous.csrf()}
    )
    assert response.status_code == 201, response.text
    provider_id = response.json()["provider_id"]
    admin, _ = await logged_in("admin")
    token = {"x-csrftoken": await admin.csrf()}
    listed = (await admin.get("/api/v1/providers", params={"status": "pending"})).json()
    assert [p["id"] for p in listed["items"]] == [provider_id]
    decided = await admin.post(
        f"/api/v1/providers/{provider_id}/decisions",
        json={"action": "verify", "documents": ["credit_code"]},
        headers=token,
    )
    assert decided.status_code == 201
    assert decided.json()["status"] == "verified"
    history = (await admin.get(f"/api/v1/providers/{provider_id}/history")).json()
    assert [h["action"] for h in history] == ["verify", "register"]
    assert history[0]["documents"] == ["credit_code"]
