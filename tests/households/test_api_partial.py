"""The households API: partial changes (PATCH), and input of the wrong shape answered 422 with the field."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from households.tables import Household, HouseholdEvent, Member
from tests.helpers import make_id


async def _api(client: Any, method: str, url: str, body: Any = None, **kwargs: Any) -> Any:
    headers = {"x-csrftoken": await client.csrf(), "accept-language": "en"}
    return await client.request(method, url, json=body, headers=headers, **kwargs)


async def test_patching_a_household_changes_only_the_fields_sent(steward, community, make_household):
    household_id = await make_household(
        community,
        category="dibao",
        groups=["serious_illness"],
        latitude=32.1,
        longitude=118.9,
        yearly_income=9000,
    )
    client, user = await steward(community)
    before = await Household.select().where(Household.id == household_id).first()
    url = f"/api/v1/households/{household_id}"

    # the responsible steward: set by id, kept when left out, cleared by null
    response = await _api(client, "PATCH", url, {"steward_id": user["id"]})
    assert response.status_code == 200 and response.json()["steward_id"] == user["id"], response.text
    assert (await _api(client, "PATCH", url, {"address": before["address"]})).json()["steward_id"] == user[
        "id"
    ]
    response = await _api(client, "PATCH", url, {"steward_id": None})
    assert response.status_code == 200 and response.json()["steward_id"] is None, response.text

    response = await _api(client, "PATCH", url, {"address": "新地址1号"})
    assert response.status_code == 200, response.text
    after = await Household.select().where(Household.id == household_id).first()
    assert after["address"] == "新地址1号"
    for kept in ("phone", "category", "groups", "status", "latitude", "longitude", "yearly_income", "level"):
        assert after[kept] == before[kept], kept

    # null clears an optional field, and only that one
    response = await _api(client, "PATCH", url, {"latitude": None, "longitude": None, "yearly_income": None})
    assert response.status_code == 200, response.text
    after = await Household.select().where(Household.id == household_id).first()
    assert (after["latitude"], after["longitude"], after["yearly_income"]) == (None, None, None)
    assert (after["address"], after["category"]) == ("新地址1号", "dibao")

    # a required field sent as null is refused, naming it, and nothing changes
    for required in ("address", "phone", "category", "groups", "status", "community_id"):
        response = await _api(client, "PATCH", url, {required: None})
        assert response.status_code == 422, (required, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [required]
    assert (await Household.select().where(Household.id == household_id).first()) == after

    # a level-relevant change scores the household again, and the history says so
    response = await _api(client, "PATCH", url, {"category": "tekun"})
    assert response.status_code == 200, response.text
    rescored = await Household.select().where(Household.id == household_id).first()
    # dibao 2 + serious illness 2 = level 2; tekun 3 + serious illness 2 = level 1 (the groups were kept)
    assert (before["level_points"], before["level"]) == (4, 2)
    assert (rescored["level_points"], rescored["level"]) == (5, 1)
    assert response.json()["level"]["points"] == rescored["level_points"]
    kinds = [e["kind"] for e in response.json()["history"]]
    assert kinds[:2] == ["level_computed", "updated"]


async def test_patching_a_member_changes_only_the_fields_sent_and_rescores(
    steward, community, make_household
):
    head = {"name": "张桂英", "id_number": make_id(date(1970, 1, 1), 2), "phone": "13711112222"}
    household_id = await make_household(
        community, members=[{**head, "can_use_phone": True, "health": "高血压"}]
    )
    member = await Member.select().where(Member.household == household_id).first()
    client, _ = await steward(community)
    url = f"/api/v1/households/{household_id}/members/{member['id']}"
    points = (await Household.select(Household.level_points).first())["level_points"]

    response = await _api(client, "PATCH", url, {"disability_grade": 1})
    assert response.status_code == 200, response.text
    after = await Member.select().where(Member.id == member["id"]).first()
    assert after["disability_grade"] == 1
    for kept in ("name", "id_index", "id_masked", "birth_date", "sex", "relation", "phone"):
        assert after[kept] == member[kept], kept
    assert after["can_use_phone"] is True or after["can_use_phone"] == 1
    rescored = (await Household.select(Household.level_points).first())["level_points"]
    assert rescored > points  # a disabled member of grade 1 counts
    shown = response.json()["members"][0]
    # Staff see that health notes are recorded; reading them is an audited act of its own.
    assert (shown["health"], shown["health_recorded"], shown["phone"]) == (None, True, "13711112222")
    notes = await _api(client, "POST", f"{url}/health-notes", {"reason": ""})
    assert notes.status_code in (200, 201), notes.text
    assert notes.json()["health"] == "高血压"

    response = await _api(client, "PATCH", url, {"phone": None, "health": None})
    assert response.status_code == 200, response.text
    after = await Member.select().where(Member.id == member["id"]).first()
    assert (after["phone"], after["health_cipher"], after["disability_grade"]) == ("", None, 1)

    for required in ("name", "id_number", "relation", "can_use_phone"):
        response = await _api(client, "PATCH", url, {required: None})
        assert response.status_code == 422, (required, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [required]
    events = await HouseholdEvent.count().where(HouseholdEvent.kind == "member_updated")
    assert events == 2


async def test_the_schema_documents_partial_changes(client):
    schema = (await client.get("/schema/openapi.json")).json()
    operation = schema["paths"]["/api/v1/households/{household_id}/members/{member_id}"]["patch"]
    assert "Only the fields sent change" in operation["description"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("MemberPatch")
    assert not schema["components"]["schemas"]["MemberPatch"].get("required")
    assert not schema["components"]["schemas"]["HouseholdPatch"].get("required")


# -- input of the wrong shape ---------------------------------------------------------------------

BAD_INPUT = [
    # (method, path, body, query, field at fault)
    ("PATCH", "/api/v1/households/{h}", {"community_id": "one"}, None, "community_id"),
    ("PATCH", "/api/v1/households/{h}", {"address": ["a", "b"]}, None, "address"),
    ("PATCH", "/api/v1/households/{h}", {"groups": "disabled"}, None, "groups"),
    ("PATCH", "/api/v1/households/{h}", {"category": "rich"}, None, "category"),
    ("PATCH", "/api/v1/households/{h}", {"status": "gone"}, None, "status"),
    ("PATCH", "/api/v1/households/{h}", {"adress": "typo"}, None, "adress"),
    ("PATCH", "/api/v1/households/{h}", {"steward_id": 123456}, None, "steward_id"),
    ("PATCH", "/api/v1/households/{h}", {"latitude": "north"}, None, "latitude"),
    ("PATCH", "/api/v1/households/{h}", {"yearly_income": "lots"}, None, "yearly_income"),
    ("PATCH", "/api/v1/households/{h}/members/{m}", {"birth_date": "1970-02-30"}, None, "birth_date"),
    ("PATCH", "/api/v1/households/{h}/members/{m}", {"disability_grade": "severe"}, None, "disability_grade"),
    ("PATCH", "/api/v1/households/{h}/members/{m}", {"can_use_phone": "sometimes"}, None, "can_use_phone"),
    ("PATCH", "/api/v1/households/{h}/members/{m}", {"relation": "friend"}, None, "relation"),
    ("PATCH", "/api/v1/households/{h}/members/{m}", {"nickname": "x"}, None, "nickname"),
    ("POST", "/api/v1/households", {"code": 5}, None, "code"),
    (
        "POST",
        "/api/v1/households",
        {
            "code": "X-1",
            "community_id": "{c}",
            "address": "a",
            "phone": "13900000000",
            "category": "dibao",
            "members": [{"name": 7}],
        },
        None,
        "members-0-name",
    ),
    (
        "POST",
        "/api/v1/households/{h}/members",
        {"name": "李四", "disability_grade": []},
        None,
        "disability_grade",
    ),
    ("POST", "/api/v1/households/{h}/members", {"id_number": "1"}, None, "name"),
    ("POST", "/api/v1/households/{h}/members/{m}/remove", {"reason": 12}, None, "reason"),
    (
        "POST",
        "/api/v1/households/{h}/level-override",
        {"level": "one", "reason": "因为", "until": "2030-01-01"},
        None,
        "level",
    ),
    (
        "POST",
        "/api/v1/households/{h}/level-override",
        {"level": 1, "reason": "因为家访", "until": "soon"},
        None,
        "until",
    ),
    (
        "POST",
        "/api/v1/households/{h}/level-override",
        {"level": 9, "reason": "因为家访", "until": "2030-01-01"},
        None,
        "level",
    ),
    ("DELETE", "/api/v1/households/{h}/level-override", None, None, "reason"),
    ("POST", "/api/v1/households/{h}/members/{m}/id-number", {"reason": {"why": "x"}}, None, "reason"),
    ("POST", "/api/v1/households/{h}/export", {"reason": None}, None, "reason"),
    ("POST", "/api/v1/households/{h}/erase", {"reason": "家属要求", "confirm_code": 1}, None, "confirm_code"),
    ("POST", "/api/v1/households/{h}/proxies", {"phone": 13912345678}, None, "phone"),
    ("POST", "/api/v1/households/{h}/proxies", {"phone": "13912345678", "role": "admin"}, None, "role"),
    ("GET", "/api/v1/households", None, {"page": "first"}, "page"),
    ("GET", "/api/v1/households", None, {"level": "high"}, "level"),
    ("GET", "/api/v1/households", None, {"community": "mine"}, "community"),
    ("POST", "/api/v1/household-imports", None, {"dry_run": "perhaps"}, "dry_run"),
    ("GET", "/api/v1/household-imports/{j}/rows", None, {"per_page": "all"}, "per_page"),
]


@pytest.mark.parametrize(("method", "path", "body", "query", "field"), BAD_INPUT)
async def test_input_of_the_wrong_shape_is_answered_422_naming_the_field(
    method, path, body, query, field, steward, community, make_household
):
    from households.tables import ImportJob

    household_id = await make_household(community)
    member = await Member.select(Member.id).first()
    client, user = await steward(community)
    job = ImportJob(created_by=user["id"], filename="x.csv", dry_run=True, state="done")
    await ImportJob.insert(job)
    ids = {"h": household_id, "m": member["id"], "j": job.id, "c": community}
    url = path.format(**ids)
    if isinstance(body, dict):
        body = {k: (v.format(**ids) if isinstance(v, str) and "{" in v else v) for k, v in body.items()}
        if body.get("community_id") == str(community):
            body["community_id"] = community
    before = await Household.select().first(), await Member.select().first()
    kwargs: dict[str, Any] = {"params": query or {}}
    if path == "/api/v1/household-imports":
        kwargs["files"] = {"file": ("x.csv", b"code\n", "text/csv")}
        response = await client.post(url, headers={"x-csrftoken": await client.csrf()}, **kwargs)
    else:
        response = await _api(client, method, url, body, **kwargs)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert field in [e["field"] for e in problem["errors"]], problem
    assert all(e["message"] for e in problem["errors"])
    assert (await Household.select().first(), await Member.select().first()) == before


async def test_the_monitoring_api_answers_input_of_the_wrong_shape_422_too(make_client, steward, community):
    from marketplace import accounts

    sender = await accounts.create_api_client("医保系统", ["signals:write"])
    system = make_client(authorization=f"Bearer {sender.token}")
    for body, field in (({"signals": "many"}, "signals"), ({"signals": [{"kind": 5}]}, "signals-0-kind")):
        response = await system.post("/api/v1/signals", json=body)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == [field]
    client, _ = await steward(community)
    response = await client.get("/api/v1/warnings", params={"per_page": "all"})
    assert response.status_code == 422 and [e["field"] for e in response.json()["errors"]] == ["per_page"]
