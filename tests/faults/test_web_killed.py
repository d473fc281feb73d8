"""The web process dies between commit and enqueue: the outbox still delivers, nothing is lost."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.faults.site import Deployment, Seeded, deployment, wait_until
from tests.procs import private_redis

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def site(seeded_database: tuple[str, Seeded], tmp_path: Path) -> Iterator[Deployment]:
    url, seeded = seeded_database
    with private_redis() as (redis_port, _), deployment(url, redis_port, tmp_path / "var", seeded) as site:
        yield site


def test_a_warning_written_by_a_killed_web_process_still_reaches_the_steward(site: Deployment) -> None:
    # Given a web process and no worker: nothing relays the outbox yet
    web, base = site.serve()
    steward_id = site.scalar("SELECT id FROM cm_user WHERE role = 'steward'")
    day = (date.today() - timedelta(days=1)).isoformat()

    # When another department reports an accident of a household in the steward's community
    with site.api(base) as api:
        response = api.post(
            "/api/v1/signals",
            json={
                "signals": [
                    {
                        "event_id": "FAULT-1",
                        "kind": "accident",
                        "occurred_on": day,
                        "household_code": "QX-YH-0001",
                    }
                ]
            },
        )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    signal_id = response.json()["results"][0]["signal_id"]
    warning_id = site.scalar("SELECT warning FROM hh_signal WHERE id = $1", signal_id)
    assert warning_id is not None
    # the request committed the warning and the message to tell the steward, in one transaction
    waiting = site.sql(
        "SELECT state, args FROM cm_outbox WHERE actor = 'households.tasks.notify_assigned' AND args::text LIKE $1",
        f"%{warning_id}%",
    )
    assert [row["state"] for row in waiting] == ["pending"]

    # and the web process is killed outright, before anyone relayed the message
    web.popen.send_signal(signal.SIGKILL)
    assert web.popen.wait(30) == -signal.SIGKILL

    # Then a worker started afterwards delivers it: the steward's inbox has the warning
    worker = site.worker()

    def delivered() -> bool:
        inbox = site.scalar(
            'SELECT COUNT(*) FROM nt_inbox_item WHERE "user" = $1 AND link = $2',
            steward_id,
            f"/warnings/{warning_id}",
        )
        return bool(inbox) and not site.scalar(
            "SELECT COUNT(*) FROM cm_outbox WHERE actor = 'households.tasks.notify_assigned'"
        )

    try:
        wait_until(delivered, timeout=90, what="the warning's notification")
    except AssertionError as exc:
        raise AssertionError(site.logs()) from exc
    # once, though the relay may have sent it more than once
    assert site.scalar("SELECT COUNT(*) FROM nt_inbox_item WHERE link = $1", f"/warnings/{warning_id}") == 1
    assert worker.popen.poll() is None
