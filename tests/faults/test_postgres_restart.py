"""PostgreSQL restarted under load: 503 with a clear message, nothing half-written, service resumes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.site import Deployment, Load, deployment, wait_until
from tests.procs import PrivatePostgres, pg_admin, private_postgres, private_redis

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

OUTAGE_SECONDS = 3


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Deployment, PrivatePostgres]]:
    with private_postgres() as server, private_redis() as (redis_port, _):
        pg_admin(server.url, "CREATE DATABASE cloudmarket")
        url = server.url.rsplit("/", 1)[0] + "/cloudmarket"
        with deployment(url, redis_port, tmp_path / "var", CLOUDMARKET_OUTBOX_LEASE_SECONDS="5") as site:
            yield site, server


def invariants(site: Deployment) -> None:
    """What every committed signal batch leaves behind, checked in the database."""
    # a warning counts exactly the signals that point at it
    miscounted = site.sql(
        "SELECT w.id, w.signal_count, COUNT(s.id) AS signals FROM hh_warning w "
        "LEFT JOIN hh_signal s ON s.warning = w.id GROUP BY w.id HAVING w.signal_count <> COUNT(s.id)"
    )
    assert miscounted == [], miscounted
    # every warning has its opening in the timeline, once
    unopened = site.sql(
        "SELECT w.id, COUNT(e.id) AS opened FROM hh_warning w LEFT JOIN hh_warning_event e "
        "ON e.warning = w.id AND e.kind = 'opened' GROUP BY w.id HAVING COUNT(e.id) <> 1"
    )
    assert unopened == [], unopened
    # a matched signal belongs to a household
    orphans = site.scalar("SELECT COUNT(*) FROM hh_signal WHERE status = 'matched' AND household IS NULL")
    assert orphans == 0


def test_postgres_restarted_under_load(site: tuple[Deployment, PrivatePostgres]) -> None:
    deployed, server = site
    invariants(deployed)
    _, base = deployed.serve()
    deployed.worker()
    steward = deployed.login(base, "steward")
    deployed.clients.append(steward)
    ready = f"{base}/readyz"

    # Given another department sending signals from several threads
    load = Load(base, deployed.token)
    threads = load.start()
    pages: list[int] = []
    try:
        wait_until(lambda: len(load.answers) >= 20, what="some signals before the restart")

        # When PostgreSQL stops (ending every session), stays down a moment and starts again
        server.stop("fast")
        before = len(load.answers)
        down_until = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < down_until:
            pages.append(steward.get("/api/v1/me").status_code)
            time.sleep(0.2)
        outage = httpx.get(ready, timeout=15)
        wait_until(lambda: len(load.answers) >= before + 4, what="requests during the outage")
        server.start()

        # Then the service resumes by itself: no process is restarted
        wait_until(lambda: httpx.get(ready, timeout=15).status_code == 200, timeout=90, what="readiness back")
        after = len(load.answers)
        wait_until(
            lambda: sum(1 for _, status, _ in load.answers[after:] if status == 200) >= 20,
            timeout=90,
            what="signals accepted after the restart",
        )
    finally:
        load.finish(threads)

    try:
        assert outage.status_code == 503
        assert outage.json()["database"] != "ok"
        assert outage.json()["broker"] == "ok"
        statuses = Counter(status for _, status, _ in load.answers)
        # requests during the outage failed with 503 and a message saying to try again, never 500
        assert set(statuses) <= {200, 503}, (
            statuses,
            [a for a in load.answers if a[1] not in (200, 503)][:3],
        )
        assert statuses[503] >= 1, statuses
        for _, status, body in load.answers:
            if status == 503:
                assert body["code"] == "unavailable"
                assert "try again" in body["detail"] or "重试" in body["detail"]
        assert set(pages) <= {200, 503} and 503 in pages, pages
        assert steward.get("/api/v1/me").status_code == 200  # the session outlived the restart

        # nothing half-written: a batch is stored whole or not at all, and what was accepted is there
        stored = {
            row["event_id"]
            for row in deployed.sql("SELECT event_id FROM hh_signal WHERE event_id LIKE 'LOAD-%'")
        }
        for event_ids, status, _ in load.answers:
            kept = set(event_ids) & stored
            assert kept in (set(), set(event_ids)), (event_ids, status)
            if status == 200:
                assert kept == set(event_ids)
        invariants(deployed)

        # and the worker's relay and actors picked up again: every warning reached its steward
        wait_until(lambda: deployed.everyone_told(), timeout=120, what="every warning's notification")
        assert deployed.scalar("SELECT COUNT(*) FROM cm_job_failure") == 0  # no job gave up on the outage
        # the relay listens for new messages again on a connection of its own
        wait_until(
            lambda: deployed.scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'"),
            timeout=60,
            what="the relay listening again",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{deployed.logs()}\n--- postgres\n{server.log()[-3000:]}") from exc
