"""`cloudmarket simulate` as a person runs it: in embedded mode, and on PostgreSQL in the second pass."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from tests.conftest import ON_POSTGRES, SERVER_URL
from tests.procs import clean_env, cli, fresh_database

ARGS = ["simulate", "--generate-only", "--households", "200", "--providers", "6", "--volunteers", "12"]


@contextlib.contextmanager
def _environment() -> Iterator[dict[str, str]]:
    var_dir = tempfile.mkdtemp(prefix="cm-simulate-")
    env = {"CLOUDMARKET_VAR_DIR": var_dir, "CLOUDMARKET_LOG_LEVEL": "WARNING"}
    try:
        if ON_POSTGRES:
            with _database(env) as environment:
                yield environment
        else:
            yield clean_env(**env)
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


@contextlib.contextmanager
def _database(env: dict[str, str]) -> Iterator[dict[str, str]]:
    with fresh_database(SERVER_URL, "cm_simulate") as url:
        environment = clean_env(
            DATABASE_URL=url,
            CLOUDMARKET_SECRET_KEY="simulate-secret",
            CLOUDMARKET_DATA_KEY=os.environ["CLOUDMARKET_DATA_KEY"],
            **env,
        )
        migrated = cli(["migrate"], environment, timeout=300)
        assert migrated.returncode == 0, migrated.stderr
        yield environment


def test_simulate_generates_a_district_and_prints_what_it_made() -> None:
    with _environment() as env:
        result = cli([*ARGS, "--seed", "5"], env, timeout=600)

        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "Simulated district" in out and "seed 5" in out
        assert "communities                     120" in out
        assert "households                      200" in out
        assert "volunteers                       12" in out
        assert "by need level" in out and "level 1" in out

        again = cli([*ARGS, "--seed", "5"], env, timeout=600)
        assert again.returncode == 1
        assert "holds a simulated district" in again.stderr


def test_simulate_generates_then_replays_a_day_of_orders() -> None:
    with _environment() as env:
        args = ["simulate", "--households", "200", "--providers", "6", "--volunteers", "12", "--orders", "40"]
        result = cli([*args, "--seed", "3"], env, timeout=900)

        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "Simulated district" in out  # no district yet: generated first
        assert "Replayed" in out and "seed 3" in out
        assert "bookings tried                   40" in out
        assert "orders booked" in out and "served and confirmed" in out
        assert "credit accounts               clean" in out

        again = cli([*args, "--seed", "3", "--orders", "10"], env, timeout=900)
        assert again.returncode == 0, again.stderr
        assert "Simulated district" not in again.stdout  # the district is there: replayed only
        assert "bookings tried                   10" in again.stdout
