"""The registry: forms with field errors, encryption at rest, masking for every role, steward scope."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest

from households.tables import Household, HouseholdEvent, Member
from marketplace.tables import AuditEvent
from tests.helpers import assert_isolated, make_id

HEAD_ID = make_id(date(1941, 3, 15), 2)


def household_form(community_id: int, **overrides: str) -> dict[str, str]:
    form = {
        "code": "QX-0001",
        "community_id": str(community_id),
        "address": "晨光路12号3栋201室",
        "phone": "13912345678",
        "category": "tekun",
        "groups": "elderly_alone",
        "status": "active",
        "members-0-name": "张桂英",
        "members-0-id_number": HEAD_ID,
        "members-0-relation": "head",
        "members-0-health": "高血压",
        "members-0-can_use_phone": "no",
    }
    form.update(overrides)
    return form


async def test_a_steward_registers_a_household_and_its_level_is_computed(steward, community):
    client, user = await steward(community)
    response = await client.post_form("/households/new", household_form(community))
    assert response.status_code == 302, response.text
    household = await Household.select().first()
    assert response.headers["location"] == f"/households/{household['id']}"
    # tekun 3 + elderly alone 2 + aged 80 or over 1 + nobody uses a phone 1
    assert (household["level"], household["level_points"]) == (1, 7)
    assert household["steward"] == user["id"]

    page = await client.get(response.headers["location"])
    assert page.status_code == 200
    assert "3201**********" in page.text and HEAD_ID not in page.text
    assert "特困人员" in page.text and "独居老人" in page.text  # the explanation, in the reader's language
    history = await HouseholdEvent.select(HouseholdEvent.kind).where(
        HouseholdEvent.household == household["id"]
    )
    assert {row["kind"] for row in history} == {"created", "level_computed"}


async def test_the_raw_columns_hold_no_plaintext(steward, community):
    client, _ = await steward(community)
    await client.post_form("/households/new", household_form(community))
    raw = await Member.raw("SELECT * FROM hh_member")
    stored = " ".join(str(value) for row in raw for value in row.values())
    assert HEAD_ID not in stored and HEAD_ID[6:14] not in stored and "高血压" not in stored
    row = raw[0]
    assert row["id_masked"] == HEAD_ID[:4] + "*" * 10 + HEAD_ID[-4:]
    assert re.fullmatch(r"[0-9a-f]{8}\.[0-9a-f]{40}", row["id_index"])


async def test_form_errors_are_shown_next_to_their_fields_and_the_id_is_not_echoed(
    steward, community, other_community
):
    client, _ = await steward(community)
    bad_id = HEAD_ID[:-1] + ("0" if HEAD_ID[-1] != "0" else "1")
    response = await client.post_form(
        "/households/new",
        household_form(
            other_community, phone="12345", **{"members-0-id_number": bad_id, "members-0-name": ""}
        ),
        headers={"accept-language": "en"},
    )
    assert response.status_code == 422
    text = response.text
    assert "Choose one of your communities." in text
    assert "Enter an 11-digit mobile number" in text
    assert "check digit does not match" in text
    assert "Enter the member&#39;s name." in text
    assert 'aria-describedby="f-members-0-id_number-error' in text
    assert bad_id not in text
    assert await Household.count() == 0


async def test_a_second_household_with_the_same_id_number_is_refused(steward, community, make_household):
    await make_household(community, members=[{"name": "甲", "id_number": HEAD_ID, "can_use_phone": True}])
    client, _ = await steward(community)
    response = await client.post_form(
        "/households/new", household_form(community, code="QX-0002"), headers={"accept-language": "en"}
    )
    assert response.status_code == 422
    assert "This ID number is already registered in household T-0001." in response.text


async def test_steward_scope_other_communities_get_404_everywhere(
    steward, community, other_community, make_household, resident_of, logged_in
):
    household_id = await make_household(community)
    mine, _ = await steward(community)
    theirs, _ = await steward(other_community)
    nobody, _ = await steward()
    provider, _ = await logged_in("provider_staff")
    resident_elsewhere, _ = await resident_of(await make_household(other_community))
    denied = [theirs, nobody, provider, resident_elsewhere]
    member = await Member.select(Member.id).where(Member.household == household_id).first()
    missing = 999_999
    for path in (
        "/households/{id}",
        "/households/{id}/edit",
        "/households/{id}/override",
        "/households/{id}/export",
        "/households/{id}/erase",
        "/api/v1/households/{id}",
    ):
        await assert_isolated(
            path.format(id=household_id),
            allowed=[mine],
            denied=[theirs, nobody] if not path.startswith("/api/") else denied,
            missing_url=path.format(id=missing),
        )
    await assert_isolated(
        f"/api/v1/households/{household_id}/members/{member['id']}/id-number",
        method="POST",
        data={"reason": "家访核对身份"},
        allowed=[mine],
        denied=[theirs, nobody],
        missing_url=f"/api/v1/households/{missing}/members/{member['id']}/id-number",
    )
    await assert_isolated(
        f"/households/{household_id}/override",
        method="POST",
        data={"level": "1", "reason": "外人不应能改", "until": date.today().isoformat()},
        allowed=[],
        denied=[theirs, nobody],
    )
    assert (await Household.select(Household.override_level).first())["override_level"] is None
    # The list holds only the steward's own communities
    listing = (await theirs.get("/api/v1/households")).json()
    assert household_id not in [item["id"] for item in listing["items"]] and listing["total"] == 1
    assert (await nobody.get("/api/v1/households")).json()["total"] == 0


@pytest.mark.parametrize("role", ["steward", "admin", "resident"])
async def test_id_numbers_are_masked_in_pages_and_api_for_every_role(
    role, steward, community, make_household, resident_of, logged_in
):
    household_id = await make_household(
        community, members=[{"name": "张桂英", "id_number": HEAD_ID, "can_use_phone": True}]
    )
    if role == "steward":
        client, _ = await steward(community)
        pages = ["/households", f"/households/{household_id}", f"/households/{household_id}/members/1/edit"]
        apis = ["/api/v1/households", f"/api/v1/households/{household_id}"]
    elif role == "admin":
        client, _ = await logged_in("admin")
        pages = ["/households", f"/households/{household_id}"]
        apis = ["/api/v1/households", f"/api/v1/households/{household_id}"]
    else:
        client, _ = await resident_of(household_id)
        pages = ["/my/household"]
        apis = ["/api/v1/households/mine", f"/api/v1/households/{household_id}"]
    masked = HEAD_ID[:4] + "*" * 10 + HEAD_ID[-4:]
    for path in pages + apis:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        assert HEAD_ID not in response.text, path
        assert HEAD_ID[6:14] + HEAD_ID[14:17] not in response.text, path
    detail = (await client.get(apis[-1])).json()
    assert detail["members"][0]["id_number_masked"] == masked
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/api/v1/households" in schema["paths"]


async def test_providers_and_volunteers_see_no_household(logged_in, community, make_household):
    household_id = await make_household(community)
    for role in ("provider_staff", "volunteer"):
        client, _ = await logged_in(role)
        assert (await client.get(f"/api/v1/households/{household_id}")).status_code == 404
        assert (await client.get("/api/v1/households")).status_code == 403
        assert (await client.get("/households")).status_code == 403


async def test_a_steward_reads_a_full_id_number_with_a_reason_and_it_is_audited(
    steward, community, make_household, logged_in
):
    household_id = await make_household(
        community, members=[{"name": "张桂英", "id_number": HEAD_ID, "can_use_phone": True}]
    )
    member_id = (await Member.select(Member.id).first())["id"]
    client, user = await steward(community)
    url = f"/households/{household_id}/members/{member_id}/reveal"

    no_reason = await client.post_form(url, {"reason": ""})
    assert no_reason.status_code == 422 and HEAD_ID not in no_reason.text

    shown = await client.post_form(url, {"reason": "家访时核对身份证"})
    assert shown.status_code == 200 and HEAD_ID in shown.text
    rows = await AuditEvent.select().where(AuditEvent.action == "household.read_id_number")
    assert len(rows) == 1
    assert rows[0]["actor_user_id"] == user["id"] and rows[0]["target_id"] == str(member_id)
    detail = json.loads(rows[0]["detail"]) if isinstance(rows[0]["detail"], str) else rows[0]["detail"]
    assert detail == {"household_id": household_id, "reason": "家访时核对身份证"}

    # An administrator sees every household, but not a full ID number
    admin, _ = await logged_in("admin")
    api = await admin.post(
        f"/api/v1/households/{household_id}/members/{member_id}/id-number",
        json={"reason": "想看看"},
        headers={"x-csrftoken": await admin.csrf()},
    )
    assert api.status_code == 403 and HEAD_ID not in api.text


async def test_every_staff_read_of_a_household_is_audited(steward, community, make_household):
    household_id = await make_household(community)
    client, user = await steward(community)
    await client.get(f"/households/{household_id}")
    await client.get(f"/api/v1/households/{household_id}")
    rows = await AuditEvent.select().where(AuditEvent.action == "household.read")
    assert [(r["actor_user_id"], r["target_id"]) for r in rows] == [(user["id"], str(household_id))] * 2


async def test_list_filters_sorts_and_pages(steward, community, area, make_household):
    second = area["communities"]["新尧社区"]
    await make_household(community, category="tekun", groups=["elderly_alone"])  # level 1
    await make_household(community, category="dibao", groups=["disabled"])  # level 3 (2 points)
    await make_household(second, category="dibao", groups=["elderly_alone"], members=[
        {"name": "王五", "id_number": make_id(date(1950, 1, 1), 5), "can_use_phone": True, "phone": "13711112222"}
    ])  # fmt: skip
    client, _ = await steward(community, second)

    def codes(body):
        return [item["code"] for item in body["items"]]

    everything = (await client.get("/api/v1/households?sort=level")).json()
    assert everything["total"] == 3 and everything["items"][0]["level"] == 1
    assert [i["level"] for i in everything["items"]] == sorted(i["level"] for i in everything["items"])
    assert (await client.get("/api/v1/households?group=elderly_alone")).json()["total"] == 2
    assert (await client.get("/api/v1/households?category=tekun")).json()["total"] == 1
    assert (await client.get(f"/api/v1/households?community={second}")).json()["total"] == 1
    assert codes((await client.get("/api/v1/households?q=王五")).json()) == ["T-0003"]
    assert codes((await client.get("/api/v1/households?q=1111")).json()) == []
    assert codes((await client.get("/api/v1/households?q=11112222")).json()) == ["T-0003"]
    suffix = make_id(date(1950, 1, 1), 5)[-4:]
    assert codes((await client.get(f"/api/v1/households?q={suffix}")).json()) == ["T-0003"]
    paged = (await client.get("/api/v1/households?per_page=2&page=2&sort=code")).json()
    assert (paged["page"], paged["pages"], codes(paged)) == (2, 2, ["T-0003"])
    page = await client.get("/households?group=elderly_alone&sort=-updated")
    assert page.status_code == 200 and "T-0001" in page.text and "T-0002" not in page.text


async def test_editing_a_household_rescores_it_and_keeps_history(steward, community, make_household):
    household_id = await make_household(community, category="dibao")
    client, user = await steward(community)
    form = {
        "community_id": str(community),
        "address": "新地址1号",
        "phone": "13912345678",
        "category": "tekun",
        "groups": "elderly_alone",
        "status": "active",
    }
    response = await client.post_form(f"/households/{household_id}/edit", form)
    assert response.status_code == 302, response.text
    household = await Household.select().where(Household.id == household_id).first()
    assert household["category"] == "tekun" and household["level"] == 1
    kinds = [
        e["kind"]
        for e in await HouseholdEvent.select()
        .where(HouseholdEvent.household == household_id)
        .order_by(HouseholdEvent.id)
    ]
    assert kinds[-2:] == ["updated", "level_computed"]


async def test_members_are_added_changed_and_removed_with_errors_next_to_fields(
    steward, community, make_household
):
    household_id = await make_household(community)
    client, _ = await steward(community)
    second = make_id(date(2012, 4, 5), 16)
    bad = await client.post_form(
        f"/households/{household_id}/members/new",
        {
            "name": "小明",
            "id_number": second,
            "birth_date": "2012-04-06",
            "relation": "grandchild",
            "can_use_phone": "no",
        },
        headers={"accept-language": "en"},
    )
    assert (
        bad.status_code == 422
        and "does not match the one in the ID number" in bad.text
        and second not in bad.text
    )
    ok = await client.post_form(
        f"/households/{household_id}/members/new",
        {
            "name": "小明",
            "id_number": second,
            "relation": "grandchild",
            "can_use_phone": "no",
            "disability_grade": "1",
        },
    )
    assert ok.status_code == 302
    new_member = await Member.select().where(Member.name == "小明").first()
    # Changing a member without retyping the ID number keeps it
    changed = await client.post_form(
        f"/households/{household_id}/members/{new_member['id']}/edit",
        {"name": "王小明", "id_number": "", "relation": "grandchild", "can_use_phone": "yes"},
    )
    assert changed.status_code == 302
    after = await Member.select().where(Member.id == new_member["id"]).first()
    assert after["name"] == "王小明" and after["id_index"] == new_member["id_index"]
    removed = await client.post_form(
        f"/households/{household_id}/members/{new_member['id']}/remove", {"reason": "迁出本市"}
    )
    assert removed.status_code == 302
    assert await Member.count().where(Member.household == household_id) == 1
    events = await HouseholdEvent.select().where(HouseholdEvent.kind == "member_removed")
    assert events[0]["reason"] == "迁出本市"


async def test_consent_is_recorded(steward, community, make_household):
    household_id = await make_household(community)
    client, _ = await steward(community)
    missing = await client.post_form(f"/households/{household_id}/consents", {"given_by": ""})
    assert missing.status_code == 422 and 'aria-invalid="true"' in missing.text
    ok = await client.post_form(
        f"/households/{household_id}/consents",
        {
            "given_by": "张桂英本人",
            "scope": "登记信息并向服务方提供地址",
            "method": "paper",
            "given_on": "2024-05-01",
        },
    )
    assert ok.status_code == 302
    page = await client.get(f"/households/{household_id}")
    assert "张桂英本人" in page.text and "登记信息并向服务方提供地址" in page.text


async def test_api_creates_a_household_with_members_and_names_bad_fields(steward, community):
    client, _ = await steward(community)
    token = await client.csrf()
    body = {
        "code": "API-1",
        "community_id": community,
        "address": "晨光路1号",
        "phone": "025-85551234",
        "category": "dibao",
        "groups": ["disabled"],
        "members": [
            {"name": "甲", "id_number": HEAD_ID, "can_use_phone": True, "disability_grade": 1},
            {"name": "乙", "id_number": HEAD_ID, "relation": "spouse"},
        ],
    }
    bad = await client.post("/api/v1/households", json=body, headers={"x-csrftoken": token})
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["members-1-id_number"]
    body["members"][1]["id_number"] = make_id(date(1945, 1, 1), 4)
    created = await client.post("/api/v1/households", json=body, headers={"x-csrftoken": token})
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["level"]["level"] == 1 and {f["rule"] for f in out["level"]["fired"]} == {
        "dibao",
        "disabled_severe",
        "aged_80",
    }
    assert HEAD_ID not in created.text
