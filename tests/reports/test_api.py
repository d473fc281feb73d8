"""The reports API: 202 while a report is built, 200 with its figures after; documented in OpenAPI."""

from __future__ import annotations

import io

from openpyxl import load_workbook

from marketplace import accounts
from tests.conftest import run_jobs

NOV = "2026-11"


async def test_a_report_answers_202_while_built_then_200_with_its_figures(world, logged_in, worker):
    client, _ = await logged_in("admin")
    url = f"/api/v1/reports?scope=street:{world.street}&period={NOV}"
    first = await client.get(url)
    assert first.status_code == 202
    body = first.json()
    assert (body["state"], body["ready"], body["figures"]) == ("queued", False, None)

    await run_jobs(worker)
    done = await client.get(url)
    assert done.status_code == 200
    body = done.json()
    assert body["ready"] and body["progress"] == 100 and body["scope"] == f"street:{world.street}"
    f = body["figures"]
    assert f["period"] == NOV and f["scope_name"] == "尧化街道"
    assert {a["name"]: a["orders"] for a in f["areas"]} == {"尧化门社区": 6, "新尧社区": 1, "尧林仙居社区": 0}
    level1 = next(x for x in f["levels"] if x["level"] == 1)
    assert (level1["submitted"], level1["accept_median_minutes"], level1["accept_p90_minutes"]) == (
        3,
        20.0,
        28.0,
    )


async def test_bad_scope_or_period_is_named(world, logged_in):
    client, _ = await logged_in("admin")
    response = await client.get("/api/v1/reports?scope=planet:1&period=2026-11")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "scope"
    response = await client.get(f"/api/v1/reports?scope=community:{world.a}&period=2026-13")
    assert response.json()["errors"][0]["field"] == "period"
    assert (await client.get(f"/api/v1/reports?scope=community:999999&period={NOV}")).status_code == 404


async def test_scopes_list_what_the_caller_may_ask_for(world, logged_in, steward_of):
    admin, _ = await logged_in("admin")
    values = {s["value"] for s in (await admin.get("/api/v1/reports/scopes")).json()}
    assert {f"district:{world.district}", f"street:{world.street}", f"provider:{world.p1}"} <= values
    steward, _ = await steward_of(world.a, world.b)
    values = {s["value"] for s in (await steward.get("/api/v1/reports/scopes")).json()}
    assert values == {f"community:{world.a}", f"community:{world.b}"}


async def test_another_system_reads_reports_with_a_reports_read_token(world, make_client, worker):
    issued = await accounts.create_api_client("统计平台", ["reports:read"])
    client = make_client(authorization=f"Bearer {issued.token}")
    response = await client.get(f"/api/v1/reports?scope=district:{world.district}&period={NOV}")
    assert response.status_code == 202
    other = await accounts.create_api_client("信号", ["signals:write"])
    denied = make_client(authorization=f"Bearer {other.token}")
    assert (
        await denied.get(f"/api/v1/reports?scope=district:{world.district}&period={NOV}")
    ).status_code == 403


async def test_the_reports_api_is_in_the_openapi_schema(client):
    schema = (await client.get("/schema/openapi.json")).json()
    operation = schema["paths"]["/api/v1/reports"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"scope", "period"}
    assert "Figures" in schema["components"]["schemas"]
    assert "/api/v1/reports/scopes" in schema["paths"]


async def test_exports_through_the_api(world, make_client, worker):
    issued = await accounts.create_api_client("统计平台", ["reports:read"])
    client = make_client(authorization=f"Bearer {issued.token}")
    query = f"scope=community:{world.a}&period={NOV}"
    first = await client.get(f"/api/v1/reports/export.csv?{query}")
    assert first.status_code == 202 and first.json()["state"] == "queued"
    await run_jobs(worker)
    response = await client.get(f"/api/v1/reports/export.csv?{query}")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "尧化门社区" in response.content.decode("utf-8-sig")
    response = await client.get(f"/api/v1/reports/export.xlsx?{query}")
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.content))
    assert "levels" in book.sheetnames
