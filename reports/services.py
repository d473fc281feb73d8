"""Reports: who may see which scope, and the cache of built reports (built by a background job).

A report is asked for by scope and period.  A fresh built report is served from
``rp_report``; a missing or stale one is queued for the ``build_report`` actor through the
outbox (once, however many people ask at the same time), and the page shows its progress.
A stale report's old figures are still shown while the new ones are built.  The report of
a running period goes stale after ``CURRENT_TTL``, a past one after ``PAST_TTL`` (late
ratings and confirmations still change it a little).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from households.services import community_scope
from households.tables import Community, District, Street
from marketplace import clock, db, outbox
from marketplace.auth import Principal, Role
from marketplace.errors import NotFound
from providers.tables import Provider
from reports import figures
from reports.figures import Figures, Period, Scope
from reports.tables import ReportBuild

log = logging.getLogger("cloudmarket.reports")

CURRENT_TTL = timedelta(minutes=10)
PAST_TTL = timedelta(hours=6)
# A build queued or running this long is taken as lost (a worker died) and queued again.
BUILD_LEASE = timedelta(minutes=15)
# A cached report nobody asked for in this long is deleted (it is built again if asked for).
KEEP_UNUSED = timedelta(days=30)
RUNNING = ("queued", "building")


def key_of(scope: Scope, period: Period) -> str:
    return f"{scope}:{period.code}:v{figures.VERSION}"


# -- who sees what -------------------------------------------------------------------------------


def _is_admin(p: Principal) -> bool:
    """Administrators, and other systems whose token carries the ``reports:read`` scope."""
    if p.client_id is not None:
        return p.has_scope("reports:read")
    return p.role == Role.ADMIN


def check_scope(p: Principal, scope: Scope) -> None:
    """Admins see every scope; a steward only the communities linked to them; others nothing."""
    if _is_admin(p):
        return
    if p.role != Role.STEWARD:
        raise NotFound()
    allowed = community_scope(p) or set()
    if scope.kind != "community" or scope.id not in allowed:
        raise NotFound()


@dataclass(frozen=True)
class ScopeChoice:
    value: str
    kind: str
    name: str


async def scope_choices(p: Principal) -> list[ScopeChoice]:
    """The scopes a caller may pick, broadest first."""
    if not _is_admin(p):
        if p.role != Role.STEWARD:
            raise NotFound()
        ids = sorted(community_scope(p) or set())
        if not ids:
            return []
        rows = await Community.select(Community.id, Community.name).where(Community.id.is_in(ids))
        return [ScopeChoice(f"community:{r['id']}", "community", r["name"]) for r in rows]
    choices: list[ScopeChoice] = []
    for kind, table in (("district", District), ("street", Street), ("community", Community)):
        for row in await table.select(table.id, table.name).order_by(table.id):
            choices.append(ScopeChoice(f"{kind}:{row['id']}", kind, row["name"]))
    providers = await Provider.select(Provider.id, Provider.name).where(Provider.status == "verified")
    choices += [ScopeChoice(f"provider:{r['id']}", "provider", r["name"]) for r in providers]
    return choices


# -- the cache -------------------------------------------------------------------------------------


@dataclass
class Report:
    """A report as a page or the API shows it: its figures if any, and how its build goes."""

    key: str
    scope: Scope
    period: Period
    state: str
    progress: int  # percent
    figures: Figures | None
    built_at: datetime | None
    stale: bool
    error: str = ""

    @property
    def ready(self) -> bool:
        return self.figures is not None and not self.stale


def _expiry(period: Period, now: datetime) -> datetime:
    return now + (CURRENT_TTL if period.end > now - timedelta(days=1) else PAST_TTL)


def _view(scope: Scope, period: Period, row: dict[str, Any] | None) -> Report:
    key = key_of(scope, period)
    if row is None:
        return Report(key, scope, period, "queued", 0, None, None, True)
    data = msgspec.json.decode(row["figures"], type=Figures) if row["figures"] else None
    expires = row["expires_at"]
    stale = data is None or row["state"] != "done" or (expires is not None and expires <= clock.now())
    progress = 100 if row["state"] == "done" else 100 * row["steps_done"] // max(1, row["steps_total"])
    return Report(key, scope, period, row["state"], progress, data, row["built_at"], stale, row["error"])


async def _row(key: str) -> dict[str, Any] | None:
    return await ReportBuild.select().where(ReportBuild.key == key).first()  # type: ignore[no-any-return]


async def report(p: Principal, scope: Scope, period: Period) -> Report:
    """The report for the caller, queuing a build when it is missing or stale."""
    check_scope(p, scope)
    await figures.scope_name(scope)  # NotFound for a scope that does not exist
    key = key_of(scope, period)
    row = await _row(key)
    view = _view(scope, period, row)
    if view.stale:
        await request_build(scope, period)
        view = _view(scope, period, await _row(key))
    return view


async def request_build(scope: Scope, period: Period) -> bool:
    """Queue a build unless one is queued or running; True if this call queued it."""
    from reports.tasks import build_report

    key = key_of(scope, period)
    now = clock.now()
    async with db.atomic():
        inserted = (
            await ReportBuild.insert(
                ReportBuild(
                    key=key,
                    scope=str(scope),
                    period=period.code,
                    version=figures.VERSION,
                    state="queued",
                    requested_at=now,
                )
            )
            .on_conflict(action="DO NOTHING")
            .returning(ReportBuild.id)
        )
        if not inserted:
            # Another request or a lost build: take it over only if nothing is running for it.
            taken = (
                await ReportBuild.update(
                    {ReportBuild.state: "queued", ReportBuild.requested_at: now, ReportBuild.steps_done: 0}
                )
                .where(
                    (ReportBuild.key == key)
                    & (
                        ReportBuild.state.not_in(list(RUNNING))
                        | (ReportBuild.requested_at < now - BUILD_LEASE)
                    )
                    & (
                        (ReportBuild.state != "done")
                        | ReportBuild.expires_at.is_null()
                        | (ReportBuild.expires_at <= now)
                    )
                )
                .returning(ReportBuild.id)
            )
            if not taken:
                return False
        await outbox.send(build_report, key)
    return True


async def build(key: str) -> bool:
    """Build the report of ``key`` unless it is fresh already (the actor's work); True if built."""
    row = await _row(key)
    if row is None:
        return False
    scope, period = Scope.parse(row["scope"]), Period.parse(row["period"])
    if not _view(scope, period, row).stale:
        return False
    await ReportBuild.update(
        {ReportBuild.state: "building", ReportBuild.steps_done: 0, ReportBuild.error: ""}
    ).where(ReportBuild.key == key)

    async def progress(done: int, total: int) -> None:
        await ReportBuild.update({ReportBuild.steps_done: done, ReportBuild.steps_total: total}).where(
            ReportBuild.key == key
        )

    try:
        result = await figures.compute(scope, period, progress)
    except Exception as exc:
        await ReportBuild.update(
            {ReportBuild.state: "failed", ReportBuild.error: f"{type(exc).__name__}: {exc}"[:500]}
        ).where(ReportBuild.key == key)
        raise
    now = clock.now()
    await ReportBuild.update(
        {
            ReportBuild.state: "done",
            ReportBuild.figures: msgspec.json.encode(result).decode(),
            ReportBuild.built_at: now,
            ReportBuild.expires_at: _expiry(period, now),
        }
    ).where(ReportBuild.key == key)
    log.info("report built", extra={"key": key})
    return True


async def invalidate(scope: Scope | None = None) -> int:
    """Mark built reports stale (all, or one scope's), so the next view rebuilds them."""
    query = ReportBuild.update({ReportBuild.expires_at: clock.now()}).where(ReportBuild.state == "done")
    if scope is not None:
        query = query.where(ReportBuild.scope == str(scope))
    rows = await query.returning(ReportBuild.id)
    return len(rows)


async def forget_old() -> int:
    """Delete cached reports of older figure versions, or not asked for in ``KEEP_UNUSED``."""
    rows = (
        await ReportBuild.delete()
        .where(
            (ReportBuild.version != figures.VERSION)
            | (
                (ReportBuild.requested_at < clock.now() - KEEP_UNUSED)
                & ReportBuild.state.not_in(list(RUNNING))
            )
        )
        .returning(ReportBuild.id)
    )
    return len(rows)
