"""Every menu page of every role, on a 360 px phone in Chinese and on a desktop in English.

Each page must answer, have one main heading, not scroll sideways on the phone, have no
serious accessibility violation (axe-core, checked on the phone), and show no English text
left untranslated on the Chinese page.  A screenshot of each goes to var/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from marketplace.auth import Role
from marketplace.navigation import MENUS
from tests.browser.conftest import DESKTOP, PHONE, check_accessibility, log_in

# Three English words in a row on a Chinese page, or a number and two words ("3 orders found"),
# are a string someone forgot to translate.  (Demo names such as "Admin Wang" have two words;
# codes and numbers are not words; text marked lang="en", such as an English name, is data.)
ENGLISH_RUN = re.compile(r"\b[A-Za-z][a-z]+(?:[ ,'-]+[A-Za-z][a-z]+){2,}\b|\b\d+ [a-z]+ [a-z]+\b")


def _pages(role: Role) -> list[str]:
    return list(dict.fromkeys(item.path for item in MENUS[role]))


async def _chinese_text(page) -> str:
    """The main text, without what is marked as another language (an English name is data)."""
    return str(
        await page.evaluate(
            """() => {
                const main = document.querySelector("main").cloneNode(true);
                main.querySelectorAll("[lang]:not([lang^=zh])").forEach((e) => e.remove());
                return main.innerText;
            }"""
        )
    )


async def _visit(page, server, role: str, problems: list[str]) -> AsyncIterator[str]:
    """Open each menu page of ``role`` in turn; yields the path of each that answered."""
    for path in _pages(Role(role)):
        response = await page.goto(f"{server.url}{path}")
        assert response is not None
        if response.status >= 400:
            problems.append(f"{path}: HTTP {response.status}")
            continue
        yield path


def _name(path: str) -> str:
    return path.strip("/").replace("/", "-") or "home"


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("role", [r.value for r in MENUS])
async def test_every_menu_page_reads_on_a_chinese_phone(live_server, open_page, shot, role):
    page = await open_page(viewport=PHONE, locale="zh-CN")
    await log_in(page, live_server, role)
    problems: list[str] = []
    async for path in _visit(page, live_server, role, problems):
        if await page.locator("h1").count() != 1:
            problems.append(f"{path}: {await page.locator('h1').count()} main headings")
        width = await page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            problems.append(f"{path}: {width} px wide on a {PHONE['width']} px phone")
        english = ENGLISH_RUN.findall(await _chinese_text(page))
        if english:
            problems.append(f"{path}: untranslated {english[:3]}")
        await shot(page, _name(path))
        await check_accessibility(page)
    assert problems == []


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("role", [r.value for r in MENUS])
async def test_every_menu_page_answers_in_english_on_a_desktop(live_server, open_page, shot, role):
    page = await open_page(viewport=DESKTOP)
    await log_in(page, live_server, role)
    await page.get_by_role("button", name="English").click()
    await page.get_by_role("heading", name=re.compile("^Hello")).wait_for()
    problems: list[str] = []
    async for path in _visit(page, live_server, role, problems):
        if await page.evaluate("document.documentElement.lang") != "en":
            problems.append(f"{path}: not in English")
        await shot(page, _name(path))
    assert problems == []
