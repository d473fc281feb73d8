"""Redis restarted under load: no committed row is lost, and readiness tells the outage."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.site import Deployment, Load, Seeded, deployment, wait_until
from tests.procs import private_redis, start_redis

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def site(
    seeded_database: tuple[str, Seeded], tmp_path: Path
) -> Iterator[tuple[Deployment, subprocess.Popen]]:
    url, seeded = seeded_database
    with (
        private_redis() as (redis_port, redis_proc),
        deployment(url, redis_port, tmp_path / "var", seeded, CLOUDMARKET_OUTBOX_LEASE_SECONDS="5") as site,
    ):
        yield site, redis_proc


def test_redis_restarted_under_load(site: tuple[Deployment, subprocess.Popen]) -> None:
    deployed, redis_proc = site
    _, base = deployed.serve()
    deployed.worker()
    steward = deployed.login(base, "steward")
    deployed.clients.append(steward)
    ready = f"{base}/readyz"
    assert httpx.get(ready, timeout=10).status_code == 200

    # Given another department sending signals from several threads
    load = Load(base, deployed.token)
    threads = load.start()
    revived = None
    try:
        wait_until(lambda: len(load.answers) >= 20, what="some signals before the outage")

        # When Redis dies (its data with it: no persistence) ...
        redis_proc.kill()
        redis_proc.wait()
        # ... readiness says so, naming the broker and not the database
        down = wait_until(lambda: _unready(ready), timeout=60, what="readiness reporting the outage")
        assert down["database"] == "ok"
        assert down["broker"] != "ok"
        before = len(load.answers)
        wait_until(lambda: len(load.answers) >= before + 8, what="requests during the outage")
        # a person's session cannot be read: "try again", on the API and on pages alike
        outage_api, outage_page = steward.get("/api/v1/me"), steward.get("/")

        # ... and comes back empty on the same port
        revived = start_redis(deployed.redis_port)
        wait_until(lambda: httpx.get(ready, timeout=10).status_code == 200, timeout=60, what="readiness back")
        after = len(load.answers)
        wait_until(
            lambda: sum(1 for _, status, _ in load.answers[after:] if status == 200) >= 10,
            what="signals accepted after the restart",
        )
    finally:
        load.finish(threads)

    try:
        statuses = Counter(status for _, status, _ in load.answers)
        # Then every answer was a success or a "try again" (503), never a server error
        assert set(statuses) <= {200, 503}, (
            statuses,
            [a for a in load.answers if a[1] not in (200, 503)][:3],
        )
        assert statuses[503] >= 1 and statuses[200] >= 30, statuses
        assert outage_api.status_code == 503 and outage_api.json()["code"] == "unavailable"
        assert outage_page.status_code == 503 and "服务暂时不可用" in outage_page.text
        # the restarted Redis kept no sessions: the steward logs in again, nothing worse
        assert steward.get("/api/v1/me").status_code == 401
        again = deployed.login(base, "steward")
        deployed.clients.append(again)
        assert again.get("/api/v1/me").status_code == 200
        for _, status, body in load.answers:
            if status == 503:
                assert body["code"] == "unavailable"
                assert body["detail"]

        # every signal the service accepted is stored, and a refused batch left nothing behind
        stored = {
            row["event_id"]
            for row in deployed.sql("SELECT event_id FROM hh_signal WHERE event_id LIKE 'LOAD-%'")
        }
        for event_ids, status, body in load.answers:
            if status == 200:
                assert body["accepted"] + body["duplicate"] == len(event_ids), body
                assert set(event_ids) <= stored
            else:
                assert not set(event_ids) & stored, (event_ids, status)

        # and the jobs the outage cut off run once Redis is back: every new warning reaches its steward
        wait_until(lambda: deployed.everyone_told(), timeout=120, what="every warning's notification")
        assert deployed.scalar("SELECT COUNT(*) FROM cm_job_failure") == 0
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{deployed.logs()}") from exc
    finally:
        if revived is not None:
            revived.kill()
            revived.wait()


def _unready(url: str) -> dict | None:
    response = httpx.get(url, timeout=15)
    return response.json() if response.status_code == 503 else None
