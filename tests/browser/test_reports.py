"""An administrator reads the month's report on a desktop: built in the background, then charts
with their tables, and the exports."""

from __future__ import annotations

import pytest

from tests.browser.conftest import DESKTOP, check_accessibility, log_in


@pytest.mark.browser
async def test_an_administrator_reads_the_months_report_and_downloads_it(live_server, open_page, shot):
    page = await open_page(viewport=DESKTOP)
    await log_in(page, live_server, "admin")
    await page.get_by_role("link", name="统计报表").first.click()
    await page.get_by_role("heading", name="统计报表", level=1).wait_for()
    await shot(page, "asked")
    # The page brings the figures in by itself once the background build is done
    await page.locator("svg.chart").first.wait_for(timeout=120_000)
    charts = await page.locator("svg.chart").count()
    assert charts >= 6
    # Each chart is followed by its table, the chart's text alternative
    assert await page.locator(".report-section table").count() == charts
    assert await page.locator("[data-refresh-after]").count() == 0
    await shot(page, "report")
    await check_accessibility(page)

    async with page.expect_download() as download:
        await page.get_by_role("link", name="下载 CSV").click()
    csv_path = await (await download.value).path()
    text = csv_path.read_text(encoding="utf-8-sig")
    assert text.count("\n") > 10 and "," in text
