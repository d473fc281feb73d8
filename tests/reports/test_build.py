"""Reports are built by a background job through the outbox, then served from the cache until stale."""

from __future__ import annotations

from datetime import timedelta

from marketplace import clock
from marketplace.auth import Principal, Role
from marketplace.tables import OutboxMessage
from reports import services
from reports.figures import Period, Scope
from reports.tables import ReportBuild
from tests.conftest import run_jobs

ADMIN = Principal(user_id=None, role=Role.ADMIN)


async def test_a_report_is_queued_once_built_in_the_background_and_then_cached(world, worker):
    scope, period = Scope("community", world.a), Period.parse("2026-11")

    # Given no report, when two people ask for it, then one build is queued through the outbox.
    first = await services.report(ADMIN, scope, period)
    second = await services.report(ADMIN, scope, period)
    assert (first.state, first.figures, first.ready) == ("queued", None, False)
    assert second.state == "queued"
    assert await OutboxMessage.count().where(OutboxMessage.actor == "reports.tasks.build_report") == 1

    # When the worker runs, the report is built with every step done.
    await run_jobs(worker)
    built = await services.report(ADMIN, scope, period)
    assert built.ready and built.state == "done" and built.progress == 100
    assert built.figures is not None and built.figures.credits.granted == 230
    row = await ReportBuild.select().where(ReportBuild.key == built.key).first()
    assert row["steps_done"] == row["steps_total"] == 7

    # A fresh report is served from the cache: asking again queues nothing.
    await services.report(ADMIN, scope, period)
    assert await OutboxMessage.count().where(OutboxMessage.state == "pending") == 0

    # Running the job again (at-least-once delivery) changes nothing.
    assert await services.build(built.key) is False


async def test_a_stale_report_shows_its_old_figures_while_it_is_rebuilt(world, worker):
    scope, period = Scope("community", world.a), Period.parse("2026-12")  # the running month
    await services.report(ADMIN, scope, period)
    await run_jobs(worker)
    built = await services.report(ADMIN, scope, period)
    assert built.ready

    # The running month goes stale after a few minutes.
    clock.advance(services.CURRENT_TTL + timedelta(seconds=1))
    stale = await services.report(ADMIN, scope, period)
    assert stale.state == "queued" and not stale.ready
    assert stale.figures is not None  # the last figures are still shown
    await run_jobs(worker)
    rebuilt = await services.report(ADMIN, scope, period)
    assert rebuilt.ready and rebuilt.built_at > built.built_at


async def test_a_lost_build_is_queued_again_after_its_lease(world):
    scope, period = Scope("community", world.a), Period.parse("2026-11")
    assert await services.request_build(scope, period) is True
    assert await services.request_build(scope, period) is False
    clock.advance(services.BUILD_LEASE + timedelta(seconds=1))
    assert await services.request_build(scope, period) is True


async def test_invalidate_marks_built_reports_stale(world, worker):
    scope, period = Scope("community", world.a), Period.parse("2026-11")
    await services.report(ADMIN, scope, period)
    await run_jobs(worker)
    assert (await services.report(ADMIN, scope, period)).ready
    assert await services.invalidate(scope) == 1
    assert not (await services.report(ADMIN, scope, period)).ready


async def test_reports_not_asked_for_in_a_month_are_forgotten(world, worker):
    scope = Scope("community", world.a)
    await services.report(ADMIN, scope, Period.parse("2026-11"))
    await run_jobs(worker)
    assert await services.forget_old() == 0
    clock.advance(services.KEEP_UNUSED + timedelta(days=1))
    await services.report(ADMIN, scope, Period.parse("2026-10"))  # asked for now: kept
    assert await services.forget_old() == 1
    assert [r["period"] for r in await ReportBuild.select(ReportBuild.period)] == ["2026-10"]
