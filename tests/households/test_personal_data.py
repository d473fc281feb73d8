"""Export and erasure (both audited), family proxy accounts, and the resident's own page."""

from __future__ import annotations

import json
from datetime import date

from households.tables import Consent, Household, HouseholdEvent, Member
from marketplace.tables import AuditEvent, User, UserLink
from tests.helpers import make_id

HEAD_ID = make_id(date(1941, 3, 15), 2)
HEAD = {
    "name": "张桂英",
    "id_number": HEAD_ID,
    "can_use_phone": False,
    "health": "高血压",
    "phone": "13911112222",
}


async def actions() -> list[str]:
    return [row["action"] for row in await AuditEvent.select(AuditEvent.action).order_by(AuditEvent.id)]


async def test_the_household_downloads_its_own_data_in_full_and_it_is_audited(
    community, make_household, resident_of
):
    household_id = await make_household(community, members=[HEAD])
    client, user = await resident_of(household_id)
    response = await client.post_form("/my/household/export")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment")
    data = json.loads(response.text)
    assert data["members"][0]["id_number"] == HEAD_ID and data["members"][0]["health"] == "高血压"
    assert data["household"]["level"] == 2 and data["history"][0]["kind"] == "created"
    rows = await AuditEvent.select().where(AuditEvent.action == "household.exported")
    assert [(r["actor_user_id"], r["target_id"]) for r in rows] == [(user["id"], str(household_id))]


async def test_a_steward_exports_with_a_reason_others_cannot(
    steward, community, other_community, make_household, logged_in
):
    household_id = await make_household(community, members=[HEAD])
    client, _ = await steward(community)
    url = f"/api/v1/households/{household_id}/export"
    token = await client.csrf()
    assert (await client.post(url, json={"reason": ""}, headers={"x-csrftoken": token})).status_code == 422
    ok = await client.post(url, json={"reason": "户主申请查阅本人信息"}, headers={"x-csrftoken": token})
    assert ok.status_code == 201 and ok.json()["members"][0]["id_number"] == HEAD_ID
    other, _ = await steward(other_community)
    assert (
        await other.post(url, json={"reason": "看看"}, headers={"x-csrftoken": await other.csrf()})
    ).status_code == 404
    admin, _ = await logged_in("admin")
    assert (
        await admin.post(url, json={"reason": "看看"}, headers={"x-csrftoken": await admin.csrf()})
    ).status_code == 403
    assert (await actions()).count("household.exported") == 1


async def test_erasure_removes_personal_fields_and_keeps_history_under_a_pseudonym(
    steward, community, make_household, resident_of
):
    household_id = await make_household(community, members=[HEAD])
    resident, resident_user = await resident_of(household_id)
    client, user = await steward(community)
    await client.post_form(
        f"/households/{household_id}/consents",
        {"given_by": "张桂英", "scope": "登记", "method": "paper", "given_on": "2024-05-01"},
    )
    code = (await Household.select(Household.code).first())["code"]

    wrong = await client.post_form(
        f"/households/{household_id}/erase", {"reason": "本人申请删除", "confirm_code": "nope"}
    )
    assert wrong.status_code == 422
    assert (await Member.select(Member.name).first())["name"] == "张桂英"

    done = await client.post_form(
        f"/households/{household_id}/erase", {"reason": "本人申请删除", "confirm_code": code}
    )
    assert done.status_code == 302
    household = await Household.select().where(Household.id == household_id).first()
    member = await Member.select().where(Member.household == household_id).first()
    pseudonym = household["pseudonym"]
    assert pseudonym and household["erased_at"] is not None and household["status"] == "exited"
    assert (household["address"], household["phone"], household["code"]) == ("", "", f"erased-{pseudonym}")
    assert member["name"] == f"{pseudonym}-1"
    assert (member["id_cipher"], member["id_index"], member["id_masked"], member["health_cipher"]) == (
        None,
        None,
        "",
        None,
    )
    assert (member["birth_date"], member["phone"]) == (None, "")
    assert (await Consent.select(Consent.given_by).first())["given_by"] == pseudonym
    kinds = [
        e["kind"]
        for e in await HouseholdEvent.select()
        .where(HouseholdEvent.household == household_id)
        .order_by(HouseholdEvent.id)
    ]
    assert kinds[0] == "created" and kinds[-1] == "erased"  # the history stays
    assert household["level"] is not None  # levels stay for the statistics
    raw = json.dumps(await Household.raw("SELECT * FROM hh_household"), default=str) + json.dumps(
        await Member.raw("SELECT * FROM hh_member"), default=str
    )
    assert "张桂英" not in raw and HEAD_ID not in raw and "13911112222" not in raw
    # The family account no longer acts for the household
    assert not await UserLink.exists().where(UserLink.user == resident_user["id"])
    assert (await resident.get(f"/api/v1/households/{household_id}")).status_code == 404
    assert "household.erased" in await actions()
    # Nothing more can be changed, and the ID number can be registered anew
    page = await client.get(f"/households/{household_id}")
    assert page.status_code == 200 and pseudonym in page.text
    again = await client.post_form(
        f"/households/{household_id}/erase", {"reason": "再来一次", "confirm_code": code}
    )
    assert again.status_code == 409


async def test_a_steward_links_a_family_proxy_account(steward, community, make_household, make_user):
    household_id = await make_household(community)
    client, _ = await steward(community)
    staff = await make_user("provider_staff")
    refused = await client.post_form(
        f"/households/{household_id}/proxies",
        {"phone": staff["phone"], "display_name": "x"},
        headers={"accept-language": "en"},
    )
    assert refused.status_code == 422 and "belongs to a staff account" in refused.text
    created = await client.post_form(
        f"/households/{household_id}/proxies", {"phone": "13766667777", "display_name": "张女儿"}
    )
    assert created.status_code == 302
    proxy = await User.select().where(User.phone == "13766667777").first()
    assert proxy["role"] == "resident" and proxy["password_hash"] is None  # activated later by an SMS code
    existing = await make_user("resident")
    await client.post_form(
        f"/households/{household_id}/proxies", {"phone": existing["phone"], "display_name": ""}
    )
    links = await UserLink.select(UserLink.user).where(
        (UserLink.kind == "household") & (UserLink.target == str(household_id))
    )
    assert {row["user"] for row in links} == {proxy["id"], existing["id"]}
    page = await client.get(f"/households/{household_id}")
    assert "张女儿" in page.text and "137****7777" in page.text
    await client.post_form(f"/households/{household_id}/proxies/{proxy['id']}/unlink")
    assert not await UserLink.exists().where(UserLink.user == proxy["id"])


async def test_the_resident_page_explains_the_level_in_plain_words(
    community, make_household, resident_of, logged_in
):
    household_id = await make_household(community, category="tekun", groups=["elderly_alone"], members=[HEAD])
    client, _ = await resident_of(household_id)
    page = await client.get("/my/household", headers={"accept-language": "en"})
    assert page.status_code == 200
    text = page.text
    assert "Level 1" in text and "Extreme hardship support" in text and "Elderly living alone" in text
    assert "points" not in text.lower()  # plain words, not the scoring machinery
    assert "remaining" not in text.lower()  # the credits number comes with the orders package; nothing fake
    assert HEAD_ID not in text and "1941" not in text
    unlinked, _ = await logged_in("resident")
    empty = await unlinked.get("/my/household", headers={"accept-language": "en"})
    assert empty.status_code == 200 and "not linked to a household yet" in empty.text
    assert (await unlinked.get("/api/v1/households/mine")).status_code == 404


async def test_health_notes_are_read_by_an_explicit_audited_act_of_a_steward_of_the_community(
    steward, community, other_community, make_household, logged_in, resident_of
):
    household_id = await make_household(community, members=[HEAD])
    member_id = (await Member.select(Member.id).first())["id"]
    client, user = await steward(community)
    # The detail, in pages and API, says notes exist without their text
    page = await client.get(f"/households/{household_id}", headers={"accept-language": "en"})
    assert page.status_code == 200 and "Health notes recorded" in page.text and "高血压" not in page.text
    detail = (await client.get(f"/api/v1/households/{household_id}")).json()
    assert detail["members"][0]["health_recorded"] is True and detail["members"][0]["health"] is None
    assert "高血压" not in (await client.get(f"/households/{household_id}/members/{member_id}/edit")).text
    assert "household.read_health" not in await actions()

    # When the steward asks to see them (page, then API), each read is audited
    shown = await client.post_form(f"/households/{household_id}/members/{member_id}/health", {"reason": ""})
    assert shown.status_code == 200 and "高血压" in shown.text
    url = f"/api/v1/households/{household_id}/members/{member_id}/health-notes"
    api = await client.post(url, json={"reason": "准备入户"}, headers={"x-csrftoken": await client.csrf()})
    assert api.status_code == 201 and api.json() == {"member_id": member_id, "health": "高血压"}
    rows = (
        await AuditEvent.select().where(AuditEvent.action == "household.read_health").order_by(AuditEvent.id)
    )
    assert [(r["actor_user_id"], r["target_type"], r["target_id"]) for r in rows] == [
        (user["id"], "member", str(member_id))
    ] * 2
    assert json.loads(rows[1]["detail"])["reason"] == "准备入户"

    # Other roles never get the text: an administrator, a steward elsewhere
    admin, _ = await logged_in("admin")
    assert "高血压" not in (await admin.get(f"/households/{household_id}")).text
    assert "高血压" not in (await admin.get(f"/api/v1/households/{household_id}")).text
    assert (await admin.post(url, json={}, headers={"x-csrftoken": await admin.csrf()})).status_code == 403
    other, _ = await steward(other_community)
    assert (await other.post(url, json={}, headers={"x-csrftoken": await other.csrf()})).status_code == 404
    form = f"/households/{household_id}/members/{member_id}/health"
    assert (await admin.post_form(form, {})).status_code == 403
    assert (await other.post_form(form, {})).status_code == 404
    assert len(await AuditEvent.select().where(AuditEvent.action == "household.read_health")) == 2
    # The household reads its own notes on its page
    resident, _ = await resident_of(household_id)
    assert "高血压" in (await resident.get("/my/household")).text

    # Saving the member without typing notes keeps them; the box removes them
    changed = await client.post_form(
        f"/households/{household_id}/members/{member_id}/edit",
        {"name": "张桂英", "relation": "head", "phone": "13911112222", "can_use_phone": "no"},
    )
    assert changed.status_code == 302
    assert (await client.post(url, json={}, headers={"x-csrftoken": await client.csrf()})).json()[
        "health"
    ] == "高血压"
    await client.post_form(
        f"/households/{household_id}/members/{member_id}/edit",
        {
            "name": "张桂英",
            "relation": "head",
            "phone": "13911112222",
            "can_use_phone": "no",
            "health_clear": "on",
        },
    )
    assert (await Member.select(Member.health_cipher).first())["health_cipher"] is None
