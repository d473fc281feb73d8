"""Browser tests: Debian's Chromium driven by Playwright against a real server started here.

On the SQLite pass the server runs embedded (its own `var/`, demo data, jobs in-process); on
the PostgreSQL pass it is a production deployment (a fresh database, a web and a worker
process). Screenshots of each step go to `var/screenshots/` (kept as CI artefacts), and
`check_accessibility(page)` runs axe-core and fails on serious or critical violations.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ON_POSTGRES, SERVER_URL
from tests.procs import ROOT, Proc, clean_env, cli, free_port, fresh_database

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = ROOT / "var" / "screenshots"
PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 900}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI") == "true":
        raise pytest.UsageError(
            "Chromium is not installed; CI must run the browser tests (apt install chromium)"
        )
    skip = pytest.mark.skip(reason="Chromium is not installed (apt install chromium)")
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(skip)


@dataclass
class LiveServer:
    """A running deployment and its demo accounts (role → (phone, password))."""

    url: str
    accounts: dict[str, tuple[str, str]]
    env: dict[str, str]


def _credentials(var_dir: Path) -> dict[str, tuple[str, str]]:
    rows = json.loads((var_dir / "demo_credentials.json").read_text(encoding="utf-8"))
    return {row["role"]: (row["phone"], row["password"]) for row in rows}


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    var_dir = tmp_path_factory.mktemp("live") / "var"
    port = free_port()
    procs: list[Proc] = []
    databases = contextlib.ExitStack()
    if ON_POSTGRES:
        env = clean_env(
            DATABASE_URL=databases.enter_context(fresh_database(SERVER_URL, "cm_browser")),
            REDIS_URL=os.environ["REDIS_URL"],
            CLOUDMARKET_REDIS_NAMESPACE=f"cmbrowser{uuid.uuid4().hex[:6]}",
            CLOUDMARKET_SECRET_KEY="browser-secret",
            CLOUDMARKET_DATA_KEY="browser-data-key",
            CLOUDMARKET_VAR_DIR=str(var_dir),
        )
        for command in (["migrate"], ["seed-demo"]):
            result = cli(command, env)
            assert result.returncode == 0, result.stderr
        procs.append(Proc(["worker", "--threads", "2"], env, "browser-worker"))
    else:
        env = clean_env(CLOUDMARKET_VAR_DIR=str(var_dir))
    server = Proc(["serve", "--port", str(port)], env, "browser-web")
    procs.append(server)
    try:
        server.wait_for(f"http://127.0.0.1:{port}/healthz")
        yield LiveServer(url=f"http://127.0.0.1:{port}", accounts=_credentials(var_dir), env=env)
    finally:
        for proc in procs:
            proc.stop()
        databases.close()


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-gpu",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield browser
        await browser.close()


@pytest.fixture
async def open_page(chromium):
    """``page = await open_page(viewport=PHONE, locale="zh-CN")``: a fresh browser profile."""
    contexts = []

    async def make(viewport: dict[str, int] = PHONE, locale: str = "zh-CN"):
        context = await chromium.new_context(viewport=viewport, locale=locale)
        # Generous waits: a loaded CI machine runs two test processes and their servers.
        context.set_default_timeout(60_000)
        context.set_default_navigation_timeout(90_000)
        contexts.append(context)
        return await context.new_page()

    yield make
    for context in contexts:
        await context.close()


@pytest.fixture
def shot(request):
    """``await shot(page, "step")`` saves var/screenshots/<test>-<nn>-<step>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    backend = "pg" if ON_POSTGRES else "sqlite"
    test = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-")
    counter = iter(range(1, 100))

    async def take(page, step: str) -> Path:
        path = SCREENSHOTS / f"{backend}-{test}-{next(counter):02d}-{step}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return take


async def check_accessibility(page) -> None:
    """No serious or critical axe-core violation on the current page."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in {"serious", "critical"}]
    details = "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:5]}" for v in bad
    )
    assert not bad, f"accessibility violations on {page.url}:\n{details}"


async def log_in(page, server: LiveServer, role: str) -> None:
    phone, password = server.accounts[role]
    await page.goto(f"{server.url}/login")
    await page.get_by_label("手机号码").fill(phone)
    await page.get_by_label("密码").fill(password)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_url(f"{server.url}/")
    # A test that switched this account to English leaves it so: start each test in Chinese.
    chinese = page.locator("button[name=locale][value=zh_CN]")
    if await chinese.count():
        await chinese.click()
        await page.locator("button[name=locale][value=en]").wait_for()
