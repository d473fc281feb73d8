"""What administrators read about the running service: failed jobs, the queue, the audit log."""

from __future__ import annotations

import json
from typing import Any

from marketplace.pagination import Page, paginate
from marketplace.tables import AuditEvent, JobFailure, OutboxMessage, User

PAGE_SIZE = 50


async def job_overview(page: int = 1) -> dict[str, Any]:
    """Counts of waiting work by actor, and the failed runs, newest first."""
    waiting = await OutboxMessage.raw(
        "SELECT actor, state, COUNT(*) AS n, MIN(due_at) AS oldest FROM cm_outbox "
        "GROUP BY actor, state ORDER BY actor, state"
    )
    failures: Page = await paginate(
        JobFailure.select().order_by(JobFailure.at, ascending=False),
        JobFailure.count(),
        page,
        PAGE_SIZE,
    )
    for row in failures.items:
        row["args"] = json.loads(row["args"]) if isinstance(row["args"], str) else row["args"]
    return {"waiting": waiting, "failures": failures}


async def audit_page(page: int = 1, action: str | None = None) -> dict[str, Any]:
    query = AuditEvent.select().order_by(AuditEvent.id, ascending=False)
    count = AuditEvent.count()
    if action:
        query = query.where(AuditEvent.action == action)
        count = count.where(AuditEvent.action == action)
    events: Page = await paginate(query, count, page, PAGE_SIZE)
    user_ids = {row["actor_user_id"] for row in events.items if row["actor_user_id"]}
    names = {
        row["id"]: row["display_name"]
        for row in await User.select(User.id, User.display_name).where(User.id.is_in(list(user_ids or {0})))
    }
    for row in events.items:
        row["actor_name"] = names.get(row["actor_user_id"], "")
    actions = [
        row["action"]
        for row in await AuditEvent.select(AuditEvent.action).distinct().order_by(AuditEvent.action)
    ]
    return {"events": events, "actions": actions, "action": action or ""}
