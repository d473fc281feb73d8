"""The HSDS 3.0 export: every response is valid against the official API description, with no personal data.

The schemas are read from ``HSDS_SCHEMA_DIR`` (default: the copy in ``hsds_schema/`` beside
this file, compiled ones minified).  Their ``$ref``s name the schemas by URL; a ``referencing``
registry maps those URLs to the local files, so nothing is fetched.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from marketplace import clock
from providers.tables import Offering, Provider
from tests.catalog_data import seed_catalog
from tests.providers.factories import make_areas, make_offering, make_provider

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = Path(os.environ.get("HSDS_SCHEMA_DIR") or Path(__file__).parent / "hsds_schema")
SPEC_BASE = "https://raw.githubusercontent.com/openreferral/specification/3.0/schema/"
OPENAPI_URI = SPEC_BASE + "openapi.json"
SHANGHAI = ZoneInfo("Asia/Shanghai")

pytestmark = pytest.mark.skipif(
    not (SCHEMA_DIR / "openapi.json").is_file(),
    reason=f"the HSDS 3.0 schemas are not at {SCHEMA_DIR} (set HSDS_SCHEMA_DIR to their folder)",
)


def _retrieve(uri: str) -> Resource:
    """Schemas named by their URL in the specification repository are read from the local copy."""
    if not uri.startswith(SPEC_BASE):
        raise LookupError(f"not an HSDS schema: {uri}")
    path = SCHEMA_DIR / uri.removeprefix(SPEC_BASE)
    return Resource.from_contents(
        json.loads(path.read_text(encoding="utf-8")), default_specification=DRAFT202012
    )


format_checker = FormatChecker()


@format_checker.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return datetime.fromisoformat(value).tzinfo is not None


@format_checker.checks("uri")
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = urlparse(value)
    return bool(parsed.scheme and parsed.netloc)


@cache
def _registry() -> Registry:
    return Registry(retrieve=_retrieve)  # type: ignore[call-arg]


def _pointer(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def validator_for(path: str) -> Draft202012Validator:
    """A validator of the 200 response of ``GET path`` in the HSDS API description."""
    ref = f"{OPENAPI_URI}#/paths/{_pointer(path)}/get/responses/200/content/{_pointer('application/json')}/schema"
    return Draft202012Validator({"$ref": ref}, registry=_registry(), format_checker=format_checker)


def assert_valid(path: str, body: object) -> None:
    errors = sorted(validator_for(path).iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


@pytest.fixture
async def directory():
    cat = await seed_catalog()
    com = (await make_areas())["communities"]
    org = await make_provider(
        name="仙林助老服务中心", address="南京市栖霞区文苑路9号", latitude=32.1056, longitude=118.9307
    )
    await make_offering(
        org,
        cat["cleaning"],
        [com["仙林社区"], com["文苑社区"]],
        hours=[(d, 480, 720) for d in range(5)] + [(d, 810, 1050) for d in range(5)] + [(5, 540, 1440)],
    )
    await make_offering(org, cat["meals"], [com["仙林社区"]], is_active=False)
    team = await make_provider(name="尧化青年志愿服务队", kind="volunteer_team")
    await make_offering(team, cat["errands"], [com["尧化门社区"]])
    volunteer = await make_provider(name="陈志愿者", kind="individual_volunteer", team=team)
    await make_offering(volunteer, cat["companionship"], [com["尧化门社区"]])
    for status in ("pending", "suspended", "refused"):
        hidden = await make_provider(name=f"不应出现{status}", status=status)
        await make_offering(hidden, cat["haircut"], [com["仙林社区"]])
    paused = await make_provider(name="暂停接单的公司", kind="company", is_active=False)
    await make_offering(paused, cat["home_repair"], [com["马群社区"]])
    ids = {row["id"]: str(row["public_id"]) for row in await Provider.select(Provider.id, Provider.public_id)}
    return {"cat": cat, "org": org, "team": team, "volunteer": volunteer, "paused": paused, "public": ids}


async def get(client, path: str, **params):
    response = await client.get(f"/hsds{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_validator_rejects_what_the_specification_rejects():
    # Guard against a validator that passes everything: a service needs a name and a UUID id.
    with pytest.raises(ValidationError):
        validator_for("/services/{id}").validate({"id": "not-a-uuid", "status": "active", "name": "x"})
    with pytest.raises(ValidationError):
        validator_for("/services/{id}").validate({"id": str(uuid.uuid4()), "status": "active"})
    with pytest.raises(ValidationError):
        validator_for("/services").validate({"total_items": "many", "contents": []})
    with pytest.raises(ValidationError):
        validator_for("/organizations/{id}").validate(
            {
                "id": str(uuid.uuid4()),
                "name": "x",
                "description": "",
                "locations": [{"id": str(uuid.uuid4())}],
            }
        )


async def test_every_endpoint_answers_valid_hsds(directory, client):
    assert_valid("/", await get(client, "/"))
    services = await get(client, "/services")
    assert_valid("/services", services)
    assert_valid("/services", await get(client, "/services", full="true"))
    for item in services["contents"]:
        assert_valid("/services/{id}", await get(client, f"/services/{item['id']}"))
    organizations = await get(client, "/organizations")
    assert_valid("/organizations", organizations)
    assert_valid("/organizations", await get(client, "/organizations", full_service="true"))
    for item in organizations["contents"]:
        assert_valid("/organizations/{id}", await get(client, f"/organizations/{item['id']}"))
        assert_valid(
            "/organizations/{id}", await get(client, f"/organizations/{item['id']}", full_service="true")
        )
    assert_valid("/service_at_locations", await get(client, "/service_at_locations"))
    taxonomies = await get(client, "/taxonomies")
    assert_valid("/taxonomies", taxonomies)
    assert_valid("/taxonomies/{id}", await get(client, f"/taxonomies/{taxonomies['contents'][0]['id']}"))
    terms = await get(client, "/taxonomy_terms")
    assert_valid("/taxonomy_terms", terms)
    assert_valid("/taxonomy_terms/{id}", await get(client, f"/taxonomy_terms/{terms['contents'][0]['id']}"))


async def test_only_verified_organizations_and_teams_are_published(directory, client):
    organizations = await get(client, "/organizations")
    public = directory["public"]
    assert sorted(o["id"] for o in organizations["contents"]) == sorted(
        [public[directory["org"]], public[directory["team"]], public[directory["paused"]]]
    )
    services = await get(client, "/services")
    assert services["total_items"] == 4  # cleaning, meals (withdrawn), the team's errands, the paused repairs
    statuses = {s["name"]: s["status"] for s in services["contents"]}
    assert statuses == {
        "保洁": "active",
        "助餐": "inactive",
        "跑腿代办": "active",
        "维修": "temporarily closed",
    }
    for hidden in (directory["volunteer"],):
        response = await client.get(f"/hsds/organizations/{public[hidden]}")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(f"/hsds/services/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/hsds/services/not-a-uuid")).status_code == 404


async def test_no_personal_data_is_published(directory, client):
    everything = json.dumps(
        [
            await get(client, "/services", full="true"),
            await get(client, "/organizations", full_service="true"),
            await get(client, "/service_at_locations"),
        ],
        ensure_ascii=False,
    )
    assert "13900001111" not in everything  # contact phone
    assert "联系人" not in everything  # contact name
    assert "陈志愿者" not in everything  # an individual volunteer appears only as the team
    assert "尧化青年志愿服务队" in everything
    assert '"phones"' not in everything and '"contacts"' not in everything


async def test_a_service_carries_areas_hours_costs_and_its_category(directory, client):
    cleaning = (await get(client, "/services", taxonomy_term_id=await _term_id(client, "cleaning")))[
        "contents"
    ]
    assert len(cleaning) == 1
    full = await get(client, f"/services/{cleaning[0]['id']}")
    assert sorted(a["name"] for a in full["service_areas"]) == ["仙林社区", "文苑社区"]
    schedules = [(s["byday"], s["opens_at"], s["closes_at"]) for s in full["schedules"]]
    assert schedules == [
        ("MO,TU,WE,TH,FR", "08:00", "12:00"),
        ("MO,TU,WE,TH,FR", "13:30", "17:30"),
        ("SA", "09:00", "23:59"),
    ]
    assert all(s["freq"] == "WEEKLY" and s["timezone"] == 8 for s in full["schedules"])
    assert [(c["option"], c.get("amount")) for c in full["cost_options"]] == [
        ("需求等级1", 5),
        ("需求等级2", 8),
        ("需求等级3", 10),
    ]
    assert full["attributes"][0]["taxonomy_term"]["code"] == "cleaning"
    assert full["organization"]["name"] == "仙林助老服务中心"
    location = full["service_at_locations"][0]["location"]
    assert (location["latitude"], location["longitude"], location["description"]) == (
        32.1056,
        118.9307,
        "南京市栖霞区文苑路9号",
    )
    # Ids are stable from one export to the next.
    assert await get(client, f"/services/{cleaning[0]['id']}") == full


async def _term_id(client, code: str) -> str:
    terms = (await get(client, "/taxonomy_terms", per_page=50))["contents"]
    return next(t["id"] for t in terms if t["code"] == code)


async def test_the_list_filters_and_pagination(directory, client):
    public = directory["public"]
    by_org = await get(client, "/services", organization_id=public[directory["org"]])
    assert sorted(s["name"] for s in by_org["contents"]) == ["保洁", "助餐"]
    assert (await get(client, "/services", search="志愿"))["total_items"] == 1
    assert (await get(client, "/services", taxonomy_id=str(uuid.uuid4())))["total_items"] == 0
    taxonomy = (await get(client, "/taxonomies"))["contents"][0]["id"]
    assert (await get(client, "/services", taxonomy_id=taxonomy))["total_items"] == 4
    assert (await get(client, "/taxonomy_terms", taxonomy_id=taxonomy))["total_items"] == 9
    assert (await get(client, "/taxonomy_terms", search="陪"))["total_items"] == 2

    page = await get(client, "/services", per_page=3, page=2)
    assert {
        k: page[k]
        for k in ("total_items", "total_pages", "page_number", "size", "first_page", "last_page", "empty")
    } == {
        "total_items": 4,
        "total_pages": 2,
        "page_number": 2,
        "size": 1,
        "first_page": False,
        "last_page": True,
        "empty": False,
    }
    beyond = await get(client, "/services", per_page=3, page=9)
    assert (beyond["size"], beyond["empty"]) == (0, True)
    bad = await client.get("/hsds/services", params={"organization_id": "nope"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "organization_id"
    located = await get(client, "/service_at_locations")
    assert {s["service"]["name"] for s in located["contents"]} == {
        "保洁",
        "助餐",
    }  # only the centre gave an address


async def test_modified_after_returns_what_changed_since(directory, client):
    clock.freeze(datetime(2027, 1, 1, 9, 0, tzinfo=SHANGHAI))
    meals = await Offering.select(Offering.id).where(Offering.category == directory["cat"]["meals"]).first()
    await Offering.update({Offering.updated_at: clock.now()}).where(Offering.id == meals["id"])
    changed = await get(client, "/services", modified_after="2026-12-31T00:00:00+08:00")
    assert [s["name"] for s in changed["contents"]] == ["助餐"]
    assert changed["contents"][0]["last_modified"] == "2027-01-01T09:00:00+08:00"
    assert (await get(client, "/services", modified_after="2027-01-01T09:00:01"))["total_items"] == 0
    clock.advance(timedelta(days=1))
    assert (await client.get("/hsds/services", params={"modified_after": "yesterday"})).status_code == 422


async def test_absurd_page_numbers_get_a_clear_error_not_a_crash(client):
    response = await client.get("/hsds/services?page=99999999999999999999")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
