"""The shelves, the provider portal and verification in a real browser: phone first, accessible."""

from __future__ import annotations

import pytest

from tests.browser.conftest import DESKTOP, PHONE, check_accessibility, log_in


async def no_sideways_scroll(page) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


@pytest.mark.browser
async def test_a_resident_browses_the_shelves_on_a_phone(live_server, open_page, shot):
    page = await open_page(viewport=PHONE)
    await log_in(page, live_server, "resident")
    await page.get_by_role("link", name="服务目录").first.click()
    await page.get_by_role("heading", name="服务目录", level=1).wait_for()
    await check_accessibility(page)
    await no_sideways_scroll(page)

    await page.get_by_label("社区").select_option(label="尧化门社区")
    await page.get_by_label("救助等级").select_option(label="1级")
    await page.get_by_role("button", name="查看服务").click()
    await page.get_by_text("服务方数量按 尧化门社区 统计。").wait_for()
    cleaning = page.locator("a.shelf", has_text="保洁")
    assert "每次 15 点" in await cleaning.inner_text()
    await shot(page, "shelves")
    await check_accessibility(page)
    await no_sideways_scroll(page)

    await page.locator("a.shelf", has_text="跑腿代办").click()
    await page.get_by_role("heading", name="为您的社区服务的机构").wait_for()
    providers = page.locator("li.offering")
    assert await providers.count() >= 2
    assert "陈志愿" not in await page.content()  # a volunteer is shown by kind and team only
    await shot(page, "errands")
    await check_accessibility(page)
    await no_sideways_scroll(page)


@pytest.mark.browser
async def test_provider_staff_change_opening_hours_on_a_phone(live_server, open_page, shot):
    page = await open_page(viewport=PHONE)
    await log_in(page, live_server, "provider_staff")
    await page.get_by_role("link", name="服务方工作台").click()
    await page.get_by_role("heading", name="栖霞区仙林社区居家养老服务中心").wait_for()
    await check_accessibility(page)
    await no_sideways_scroll(page)

    await page.get_by_role("link", name="服务项目与时间").click()
    await page.get_by_role("link", name="保洁 · 上门保洁（约2小时）").click()
    await page.get_by_label("星期六 开始 1").fill("09:00")
    await page.get_by_label("星期六 结束 1").fill("25:00")
    await page.get_by_role("button", name="保存").click()
    error = page.locator("#f-schedule_5-error")
    await error.wait_for()
    assert "时间请写成" in await error.inner_text()
    assert await page.get_by_label("星期六 结束 1").get_attribute("aria-invalid") == "true"
    await shot(page, "hours-error")
    await check_accessibility(page)
    await no_sideways_scroll(page)

    await page.get_by_label("星期六 结束 1").fill("12:00")
    await page.get_by_role("button", name="保存").click()
    await page.get_by_text("星期六 09:00–12:00").wait_for()
    await shot(page, "offerings")
    await check_accessibility(page)


@pytest.mark.browser
async def test_an_administrator_verifies_a_provider_on_a_desktop(live_server, open_page, shot):
    page = await open_page(viewport=DESKTOP)
    await log_in(page, live_server, "admin")
    await page.goto(f"{live_server.url}/admin/providers?status=pending")
    await check_accessibility(page)
    await page.get_by_role("link", name="燕子矶街道爱心助老协会").click()
    await page.get_by_label("认证通过：可以接收订单").check()
    await page.get_by_role("button", name="记录审核决定").click()
    assert "请勾选已核验的材料" in await page.locator(".field-error").first.inner_text()
    await check_accessibility(page)

    await page.get_by_label("已在公开登记系统核验统一社会信用代码").check()
    await page.get_by_label("已与民政部门签订服务协议").check()
    await page.get_by_role("button", name="记录审核决定").click()
    await page.locator(".pstatus-verified").first.wait_for()
    await shot(page, "verified")
    await check_accessibility(page)

    for path in ("/admin/policies", "/admin/policies/1", "/admin/catalog"):
        await page.goto(live_server.url + path)
        await page.get_by_role("heading", level=1).first.wait_for()
        await shot(page, path.strip("/").replace("/", "-"))
        await check_accessibility(page)
