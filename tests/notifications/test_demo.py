"""The demo data leaves messages that the running service delivers."""

from __future__ import annotations

from marketplace import clock, demo
from marketplace.auth import Role
from marketplace.tables import User
from notifications.tables import InboxItem, SandboxSms
from tests.conftest import run_jobs


async def test_demo_accounts_find_messages_in_their_inbox(worker, daytime):
    await demo.seed_demo()
    await run_jobs(worker)
    resident = await User.select(User.id).where(User.role == Role.RESIDENT.value).first()
    titles = [r["title"] for r in await InboxItem.select().where(InboxItem.user == resident["id"])]
    today = clock.local_now().date()
    assert set(titles) == {"订单已接单：助餐", f"{today.year}年{today.month}月服务点数"}
    # (the households demo adds warnings for the steward to verify: counted in tests/households/test_demo.py)
    others = InboxItem.notification._.key.not_like("warning_assigned:warning:%")
    # the offer to the provider and the volunteer, the accepted order, a warning, and the month's
    # credits (the ledger's real message) to the resident
    assert await InboxItem.count().where(others) == 5
    assert "246810" in " ".join(r["text"] for r in await SandboxSms.select())
