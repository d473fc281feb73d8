"""Every role logs in and finds its page, on a phone and on a desktop, in Chinese and English."""

from __future__ import annotations

import pytest

from tests.browser.conftest import DESKTOP, PHONE, check_accessibility, log_in

ROLES = ["resident", "provider_staff", "volunteer", "steward", "admin"]


@pytest.mark.browser
@pytest.mark.parametrize("role", ROLES)
async def test_each_role_logs_in_and_sees_its_home_page(live_server, open_page, shot, role):
    page = await open_page(viewport=PHONE)
    await log_in(page, live_server, role)
    await page.get_by_role("heading", level=1).wait_for()
    assert "您好" in await page.get_by_role("heading", level=1).inner_text()
    await shot(page, "home")
    await check_accessibility(page)
    # Nothing overflows a 360 px phone sideways
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360

    await page.get_by_role("button", name="退出登录").click()
    await page.wait_for_url(f"{live_server.url}/login")


@pytest.mark.browser
async def test_login_errors_sit_next_to_their_fields_and_keyboard_works(live_server, open_page, shot):
    page = await open_page(viewport=PHONE)
    await page.goto(f"{live_server.url}/login")
    await check_accessibility(page)
    await page.get_by_role("button", name="登录").click()
    await page.locator("#phone-error").wait_for()
    assert await page.locator("#phone").get_attribute("aria-invalid") == "true"
    assert "请输入您的手机号码" in await page.locator("#phone-error").inner_text()
    await shot(page, "empty-fields")
    await check_accessibility(page)

    # Keyboard only: type into the fields and press Enter
    phone, password = live_server.accounts["resident"]
    await page.locator("#phone").focus()
    await page.keyboard.type(phone)
    await page.keyboard.press("Tab")
    await page.keyboard.type(password)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{live_server.url}/")


@pytest.mark.browser
async def test_english_on_request_and_admin_pages_on_a_desktop(live_server, open_page, shot):
    page = await open_page(viewport=DESKTOP)
    await log_in(page, live_server, "admin")
    await page.get_by_role("button", name="English").click()
    await page.get_by_role("heading", name="Hello, 民政局管理员 Admin Wang").wait_for()
    for path, heading in (
        ("/admin/api-clients", "Integration clients"),
        ("/admin/jobs", "Background jobs"),
        ("/admin/audit", "Audit log"),
    ):
        await page.goto(live_server.url + path)
        await page.get_by_role("heading", name=heading, level=1).wait_for()
        await shot(page, path.rsplit("/", 1)[1])
        await check_accessibility(page)
