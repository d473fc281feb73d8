"""Every write route of the registry, found in the app itself: outsiders get 404 and change nothing.

A route added later under these prefixes is tested without being listed here; one that is not
about a single household (the upload, registering a new one) must be allowed explicitly, and
an API route needs a body below, so that its refusal is not merely a refusal of the body.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from litestar.routes import HTTPRoute

from households import services
from households.tables import ImportJob, Member
from marketplace import clock
from marketplace.app import create_app
from tests.helpers import make_id
from tests.households.conftest import ADMIN

PREFIXES = ("/households", "/api/v1/households", "/api/v1/household-imports")
READS = {"GET", "HEAD", "OPTIONS"}
NOT_ONE_HOUSEHOLD = {  # scoped by what they create, not by a household in the address
    ("POST", "/households/new"),
    ("POST", "/api/v1/households"),
    ("POST", "/households/import"),
    ("POST", "/api/v1/household-imports"),
}
RESIDENTS_MAY = {("POST", "/api/v1/households/{household_id}/export")}  # their own household's data
TABLES = (
    "hh_household", "hh_member", "hh_consent", "hh_household_event", "hh_import_job", "hh_import_row",
    "cm_user", "cm_user_link",
)  # fmt: skip
NEW_ID = make_id(date(1980, 5, 5), 9)
UNTIL = (date.today() + timedelta(days=30)).isoformat()
# One form holding every field any of the registry's forms reads, each valid.
FORM = {
    "code": "HH-NEW", "community_id": "0", "address": "外人路1号", "phone": "13611112222", "category": "tekun",
    "status": "suspended", "name": "外人", "id_number": NEW_ID, "relation": "child", "can_use_phone": "yes",
    "reason": "外人不应能改", "level": "1", "until": UNTIL, "given_by": "外人", "scope": "全部", "method": "paper",
    "given_on": "2024-01-01", "display_name": "外人", "confirm_code": "{code}",
}  # fmt: skip
API_BODIES: dict[tuple[str, str], tuple[dict[str, Any] | None, dict[str, str]]] = {
    ("PATCH", "/api/v1/households/{household_id}"): ({"address": "外人路1号", "category": "tekun"}, {}),
    ("POST", "/api/v1/households/{household_id}/members"): (
        {"name": "外人", "id_number": NEW_ID, "relation": "child", "can_use_phone": True},
        {},
    ),
    ("PATCH", "/api/v1/households/{household_id}/members/{member_id}"): ({"disability_grade": 1}, {}),
    ("POST", "/api/v1/households/{household_id}/members/{member_id}/remove"): (
        {"reason": "外人不应能改"},
        {},
    ),
    ("POST", "/api/v1/households/{household_id}/members/{member_id}/id-number"): ({"reason": "外人想看"}, {}),
    ("POST", "/api/v1/households/{household_id}/members/{member_id}/health-notes"): (
        {"reason": "外人想看"},
        {},
    ),
    ("POST", "/api/v1/households/{household_id}/level-override"): (
        {"level": 1, "reason": "外人不应能改", "until": UNTIL},
        {},
    ),
    ("DELETE", "/api/v1/households/{household_id}/level-override"): (None, {"reason": "外人不应能改"}),
    ("POST", "/api/v1/households/{household_id}/export"): ({"reason": "外人想导出"}, {}),
    ("POST", "/api/v1/households/{household_id}/erase"): (
        {"reason": "外人不应能改", "confirm_code": "{code}"},
        {},
    ),
    ("POST", "/api/v1/households/{household_id}/proxies"): (
        {"phone": "13611112222", "display_name": "外人"},
        {},
    ),
    ("POST", "/api/v1/household-imports/{job_id}/apply"): ({}, {}),
}


def _write_routes() -> list[tuple[str, str]]:
    found = set()
    for route in create_app(run_jobs=False).routes:
        if isinstance(route, HTTPRoute) and route.path.startswith(PREFIXES):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            found |= {(method, path) for method in set(route.methods) - READS}
    return sorted(found - NOT_ONE_HOUSEHOLD)


WRITE_ROUTES = _write_routes()


async def _snapshot() -> dict[str, list[Any]]:
    return {table: await Member.raw(f"SELECT * FROM {table} ORDER BY id") for table in TABLES}  # noqa: S608


@pytest.fixture
async def target(community, make_household, steward):
    """A household of ``community`` with two members, a level override, a family account and an import."""
    household_id = await make_household(
        community, members=[
            {"name": "张桂英", "id_number": make_id(date(1941, 3, 15), 2), "can_use_phone": False},
            {"name": "李明", "id_number": make_id(date(1975, 3, 15), 3), "relation": "child", "can_use_phone": True},
        ],
    )  # fmt: skip
    await services.override_level(ADMIN, household_id, level=1, reason="家访后认定", until=UNTIL)
    proxy = await services.link_proxy(ADMIN, household_id, phone="13700001111", name="李家属")
    owner, owner_user = await steward(community)
    job = ImportJob(
        created_by=owner_user["id"], filename="x.csv", dry_run=True, state="done", content=b"code\n",
        finished_at=clock.now(),
    )  # fmt: skip
    await ImportJob.insert(job)
    member = await Member.select(Member.id).where(Member.household == household_id).first()
    code = (await services._household_row(household_id))["code"]
    return {
        "household_id": household_id,
        "member_id": member["id"],
        "user_id": proxy,
        "job_id": job.id,
        "code": code,
    }


async def _send(client: Any, method: str, path: str, ids: dict[str, Any]) -> Any:
    url = path.format(**ids)
    if not path.startswith("/api/"):
        return await client.post_form(url, {k: v.format(**ids) for k, v in FORM.items()})
    assert (method, path) in API_BODIES, f"{method} {path}: add a valid body for this new route to API_BODIES"
    body, query = API_BODIES[(method, path)]
    if body is not None:
        body = {k: v.format(**ids) if isinstance(v, str) else v for k, v in body.items()}
    headers = {"x-csrftoken": await client.csrf()}
    return await client.request(method, url, json=body, params=query, headers=headers)


@pytest.mark.parametrize(("method", "path"), WRITE_ROUTES, ids=[f"{m} {p}" for m, p in WRITE_ROUTES])
async def test_a_steward_of_another_community_gets_404_and_changes_nothing(
    method, path, target, steward, other_community
):
    outsider, _ = await steward(other_community)
    before = await _snapshot()
    response = await _send(outsider, method, path, target)
    assert response.status_code == 404, (response.status_code, response.text[:300])
    assert await _snapshot() == before


@pytest.mark.parametrize(("method", "path"), WRITE_ROUTES, ids=[f"{m} {p}" for m, p in WRITE_ROUTES])
async def test_a_resident_writes_nothing_but_what_residents_may(method, path, target, resident_of):
    resident, _ = await resident_of(target["household_id"])
    before = await _snapshot()
    response = await _send(resident, method, path, target)
    if (method, path) in RESIDENTS_MAY:
        assert response.status_code < 300, response.text[:300]
    else:
        assert response.status_code in (403, 404), (response.status_code, response.text[:300])
    assert await _snapshot() == before


def test_the_routes_are_found():
    assert len(WRITE_ROUTES) >= 20  # the enumeration itself must not silently find nothing
    assert ("POST", "/households/{household_id}/proxies/{user_id}/unlink") in WRITE_ROUTES
