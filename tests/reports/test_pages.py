"""Report pages, exports and the steward's dashboard: who sees what, and exports that read back."""

from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

from marketplace.auth import Principal, Role
from reports import services, sheets
from reports.figures import Period, Scope
from tests.conftest import run_jobs

ADMIN = Principal(user_id=None, role=Role.ADMIN)
NOV = "2026-11"


async def _built(client, url: str, worker) -> str:
    """Open a report page, let the background job build it, open it again."""
    first = await client.get(url)
    assert first.status_code == 200, first.text
    await run_jobs(worker)
    page = await client.get(url)
    assert page.status_code == 200
    return page.text


async def test_admin_report_page_has_a_chart_and_a_table_per_section(world, logged_in, worker):
    client, _ = await logged_in("admin")
    first = await client.get(f"/reports?scope=district:{world.district}&period={NOV}")
    assert first.status_code == 200
    assert "data-refresh-after" in first.text and "<progress" in first.text
    await run_jobs(worker)
    page = (await client.get(f"/reports?scope=district:{world.district}&period={NOV}")).text
    assert "data-refresh-after" not in page
    assert page.count('<svg class="chart"') >= 6
    assert page.count("<table") == page.count('<svg class="chart"')
    assert "栖霞区" in page and "尧化街道" in page
    assert "/reports/export.xlsx?scope=district:" in page


async def test_a_steward_sees_only_their_communities(world, steward_of, worker):
    client, _ = await steward_of(world.a)
    page = await _built(client, f"/reports?period={NOV}", worker)  # their community by default
    assert "尧化门社区" in page
    options = page.split('id="scope"')[1].split("</select>")[0]
    assert f"community:{world.a}" in options and f"community:{world.c}" not in options
    for other in (
        f"community:{world.c}",
        f"street:{world.street}",
        f"district:{world.district}",
        f"provider:{world.p1}",
    ):
        assert (await client.get(f"/reports?scope={other}&period={NOV}")).status_code == 404
        assert (await client.get(f"/reports/export.csv?scope={other}&period={NOV}")).status_code == 404
        api = await client.get(f"/api/v1/reports?scope={other}&period={NOV}")
        assert api.status_code == 404


async def test_residents_and_providers_see_no_reports(world, logged_in):
    for role in ("resident", "provider_staff"):
        client, _ = await logged_in(role)
        assert (await client.get("/reports")).status_code == 403
        assert (await client.get("/api/v1/reports")).status_code == 403


async def test_exports_read_back_as_the_figures(world, logged_in, worker):
    client, _ = await logged_in("admin")
    query = f"scope=community:{world.a}&period={NOV}"
    await _built(client, f"/reports?{query}", worker)
    report = await services.report(ADMIN, Scope("community", world.a), Period.parse(NOV))
    assert report.figures is not None
    expected = {s.id: s for s in sheets.sheets(report.figures)}

    response = await client.get(f"/reports/export.csv?{query}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    blocks: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    titles = {s.title: s.id for s in expected.values()}
    for line in lines[2:]:
        if not line:
            current = None
        elif current is None:
            current = blocks.setdefault(titles[line[0]], [])
        else:
            current.append(line)
    assert set(blocks) == set(expected)
    for sheet_id, sheet in expected.items():
        header, *rows = blocks[sheet_id]
        assert header == [c.label for c in sheet.columns]
        assert rows == [["" if v is None else str(v) for v in row] for row in sheet.rows]
    levels = {row[0]: row for row in blocks["levels"][1:]}
    assert levels[sheets._level(1)][1:4] == ["3", "3", "2"]

    response = await client.get(f"/reports/export.xlsx?{query}")
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == list(expected)
    for sheet_id, sheet in expected.items():
        ws = book[sheet_id]
        values = [list(r) for r in ws.iter_rows(min_row=3, values_only=True)]
        assert values == sheet.rows
    times = {row[0]: row for row in ws_rows(book["times"])}
    assert times[sheets._level(1)][1:] == [20.0, 28.0, 90.0, 210.0]


def ws_rows(ws):
    return [list(r) for r in ws.iter_rows(min_row=3, values_only=True)]


async def test_an_export_before_the_first_build_goes_to_the_page(world, logged_in):
    client, _ = await logged_in("admin")
    response = await client.get(f"/reports/export.csv?scope=community:{world.a}&period={NOV}")
    assert response.status_code in (302, 303)
    assert response.headers["location"].startswith("/reports?")


async def test_the_steward_dashboard_lists_todays_work_in_their_communities(world, steward_of):
    client, _ = await steward_of(world.a)
    home = await client.get("/")
    assert 'href="/dashboard"' in home.text
    page = await client.get("/dashboard")
    assert page.status_code == 200
    text = page.text
    assert f'href="/orders/{world.orders["o6"]}"' in text  # escalated
    assert f'href="/warnings/{world.warnings["w3"]}"' in text  # overdue
    assert f'href="/warnings/{world.warnings["w4"]}"' in text
    assert f'href="/warnings/{world.warnings["w1"]}"' not in text  # verified
    assert f'href="/households/{world.households["h8"]}"' in text  # not reached
    assert f'href="/households/{world.households["h6"]}"' in text
    assert f'href="/households/{world.households["h1"]}"' not in text

    elsewhere, _ = await steward_of(world.c)
    text = (await elsewhere.get("/dashboard")).text
    assert "/orders/" not in text and "/warnings/" not in text
    assert f'href="/households/{world.households["h8"]}"' not in text


async def test_a_steward_without_a_community_is_told_what_to_do(world, logged_in):
    client, _ = await logged_in("steward")
    response = await client.get("/reports")
    assert response.status_code == 422
    assert "管理员" in response.text
