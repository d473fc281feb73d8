"""Platform overhead: health check, an authenticated API call and a logged-in page over HTTP.

One web process on PostgreSQL + Redis under wrk (32 connections, 10 s each), so later figures
(bookings, reports) can be read against what the shell alone costs.
"""

from __future__ import annotations

from bench.common import deployment, figure, fresh_database, wrk
from tests.procs import cli, login


def main() -> None:
    with fresh_database() as database_url, deployment(database_url, web=1) as dep:
        issued = cli(["create-api-client", "--name", "bench"], dep.env)
        token = issued.stdout.strip().split(": ", 1)[1]
        cli(
            [
                "create-user",
                "--phone",
                "13700000001",
                "--name",
                "bench",
                "--role",
                "steward",
                "--password",
                "bench-password",
            ],
            dep.env,
        )
        browser = login(dep.urls[0], "13700000001", "bench-password")
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
        for label, path, headers in (
            ("GET /healthz (no auth)", "/healthz", []),
            ("GET /api/v1/me (bearer token)", "/api/v1/me", [f"Authorization: Bearer {token}"]),
            ("GET / (session cookie, Jinja page)", "/", [f"Cookie: {cookie}"]),
        ):
            result = wrk(dep.urls[0] + path, headers=headers)
            figure(f"{label}: requests/s", result.requests_per_second)
            figure(f"{label}: p50 / p99 latency", f"{result.p50_ms:.1f} / {result.p99_ms:.1f}", "ms")
            if result.errors:
                figure(f"{label}: errors", str(result.errors))
