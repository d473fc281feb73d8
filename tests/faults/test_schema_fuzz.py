"""Schemathesis over the whole OpenAPI schema, as each role, on a seeded production deployment.

Every operation the schema lists (new ones are picked up by themselves) gets a few generated
requests per role: no answer may be a server error, every answer must match the schema, and
no body may carry a full 18-character ID number (they are shown masked only).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.faults.site import ROLES, Deployment, Seeded, deployment
from tests.procs import private_redis

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# Examples per operation and caller: the whole file stays within about two minutes.
MAX_EXAMPLES = 3
# Demo rows have small ids; a generated id would almost always miss them.
KNOWN_IDS = st.integers(min_value=1, max_value=6)
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
# Area code, birth date, sequence, check character: a real-looking ID number, not any 18 digits.
FULL_ID_NUMBER = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])"
)


@pytest.fixture
def site(seeded_database: tuple[str, Seeded], tmp_path: Path) -> Iterator[tuple[Deployment, str]]:
    url, seeded = seeded_database
    with private_redis() as (redis_port, _), deployment(url, redis_port, tmp_path / "var", seeded) as site:
        _, base = site.serve()
        yield site, base


def callers(site: Deployment, base: str) -> dict[str, requests.Session]:
    """A logged-in session per role (the CSRF token sent as a header), an API client's token, no one."""
    sessions: dict[str, requests.Session] = {}
    for role in ROLES:
        browser = site.login(base, role)
        session = requests.Session()
        for name, value in browser.cookies.items():
            session.cookies.set(name, value)
        session.headers["X-CSRFToken"] = browser.cookies.get("cm_csrf") or ""
        sessions[role] = session
    client = requests.Session()
    client.headers["Authorization"] = f"Bearer {site.token}"
    sessions["api_client"] = client
    sessions["anonymous"] = requests.Session()
    return sessions


def strategy_for(operation: Any) -> Any:
    """Generated requests, half of them with ids that exist in the demo data."""
    generated = operation.as_strategy()
    id_names = [
        p.name
        for p in operation.path_parameters
        if (p.definition.get("schema") or {}).get("type") == "integer"
    ]
    if not id_names:
        return generated
    with_known_ids = KNOWN_IDS.flatmap(
        lambda i: operation.as_strategy(path_parameters=dict.fromkeys(id_names, i))
    )
    return st.one_of(generated, with_known_ids)


def exercise(operation: Any, base: str, session: requests.Session) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # a failure is reported as found, not shrunk
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy_for(operation))
    def run(case: Any) -> None:
        response = case.call(base_url=base, session=session, timeout=30)
        case.validate_response(response, checks=CHECKS)
        leaked = FULL_ID_NUMBER.search(response.text)
        assert leaked is None, f"a full ID number in the answer: {leaked.group(0) if leaked else ''}"

    run()


def test_every_operation_as_every_role(site: tuple[Deployment, str]) -> None:
    deployed, base = site
    schema = schemathesis.openapi.from_url(f"{base}/schema/openapi.json", timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40  # the whole API, not a fragment of it
    failures: list[str] = []

    for role, session in callers(deployed, base).items():
        for operation in operations:
            try:
                exercise(operation, base, session)
            except (AssertionError, Exception, BaseExceptionGroup) as exc:  # one run shows every bug
                failures.append(f"{role} {operation.label}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures) + "\n\n" + deployed.logs()
