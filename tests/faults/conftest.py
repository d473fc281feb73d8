"""One seeded database for the fault tests on the run's server; each test works on a copy of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import SERVER_URL
from tests.faults.site import Seeded, copy_of, deployment
from tests.households.conftest import area  # noqa: F401 - a fixture of the routing world
from tests.orders.routing_world import world  # noqa: F401 - the worker-kill trials' scene
from tests.procs import fresh_database, private_redis


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Seeded]]:
    """Migrated, demo data loaded, an API token issued: once per run (some seven seconds)."""
    with fresh_database(SERVER_URL, "cm_fault_tpl") as url:
        with (
            private_redis() as (redis_port, _),
            deployment(url, redis_port, tmp_path_factory.mktemp("seed")) as site,
        ):
            seeded = Seeded(site.creds, site.token)
        yield url, seeded


@pytest.fixture
def seeded_database(seeded_template: tuple[str, Seeded]) -> Iterator[tuple[str, Seeded]]:
    """A fresh copy of the seeded database for one test."""
    template, seeded = seeded_template
    with copy_of(template) as url:
        yield url, seeded
