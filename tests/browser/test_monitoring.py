"""A steward verifies a warning in the browser: the queue, a home visit, services booked now."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from tests.browser.conftest import PHONE, check_accessibility, log_in


@pytest.mark.browser
async def test_a_steward_visits_a_warned_household_and_books_services_for_it(live_server, open_page, shot):
    page = await open_page(viewport=PHONE)
    await log_in(page, live_server, "steward")
    await page.goto(f"{live_server.url}/warnings")
    await page.get_by_role("heading", name="预警", exact=True).wait_for()
    await shot(page, "queue")
    await check_accessibility(page)

    # The first warning still waiting for a visit
    await page.locator("main h2 a").first.click()
    await page.get_by_role("link", name="登记上门核实").click()
    await page.get_by_role("heading", name="上门核实").wait_for()
    await page.get_by_label("见到了谁").fill("户主本人和女儿")
    await page.get_by_label("核实情况").fill("住院后行动不便，需要送药和助餐。")
    await page.locator("input[name=needs]").first.check()
    await shot(page, "visit")
    await page.get_by_role("button", name="保存核实记录").click()
    await page.get_by_role("link", name="决定处置方式").wait_for()
    await shot(page, "verified")

    await page.get_by_role("link", name="决定处置方式").click()
    await page.get_by_label("立即预约服务").check()
    await page.locator("input[name=categories]").first.check()
    await page.get_by_label("期望服务日期").fill((date.today() + timedelta(days=1)).isoformat())
    await page.get_by_label("理由（记入档案）").fill("核实属实，先安排服务。")
    await shot(page, "decide")
    await page.get_by_role("button", name="按此处置并办结预警").click()
    await page.wait_for_url(re.compile(r"/warnings/\d+$"))
    # The booking is carried out by a background job; the warning then names the order.
    for _ in range(60):
        body = await page.locator("main").inner_text()
        if re.search(r"CS\d{8}-\d+", body):
            break
        await page.wait_for_timeout(1000)
        await page.reload()
    await shot(page, "closed")
    await check_accessibility(page)
    assert re.search(r"CS\d{8}-\d+", body), body
