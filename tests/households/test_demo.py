"""The households demo: a registry, warnings to verify, one handled, a signal waiting for review."""

from __future__ import annotations

from households.tables import HouseholdWarning, Signal
from marketplace import demo
from marketplace.auth import Role
from marketplace.tables import User
from notifications.tables import InboxItem
from tests.conftest import run_jobs


async def test_the_demo_steward_finds_warnings_to_verify(worker, make_client):
    creds = await demo.seed_demo()
    await run_jobs(worker)
    steward = await User.select(User.id).where(User.role == Role.STEWARD.value).first()
    real_warnings = InboxItem.notification._.key.like("warning_assigned:warning:%")
    assert await InboxItem.count().where((InboxItem.user == steward["id"]) & real_warnings) == 2
    assert [w["status"] for w in await HouseholdWarning.select().order_by(HouseholdWarning.id)] == [
        "open",
        "open",
        "closed",
    ]
    assert await Signal.count().where(Signal.status == "unmatched") == 1
    login = next(c for c in creds if c.role == "steward")
    client = make_client()
    await client.login(login.phone, login.password)
    queue = await client.get("/warnings")
    assert queue.status_code == 200 and queue.text.count('class="card warning') == 2
    home = await client.get("/")
    assert 'href="/warnings"' in home.text
