"""What the benchmarks share: a fresh PostgreSQL database, deployments of real processes,
HTTP load generators (wrk, and ``http_load`` in Python for requests that differ per client),
peak memory of processes, percentiles and a figure printer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import statistics
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.procs import Proc, clean_env, cli, free_port
from tests.procs import fresh_database as procs_fresh_database

DATABASE_SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql://127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database for one benchmark, dropped afterwards."""
    with procs_fresh_database(DATABASE_SERVER, "cm_bench") as url:
        yield url


def measure_in_child(module: str, *args: str) -> None:
    """Run ``python -m module --measure ARGS`` on a fresh database, so that it reads its own settings."""
    import sys
    import tempfile

    with fresh_database() as database_url:
        env = clean_env(
            DATABASE_URL=database_url,
            CLOUDMARKET_DATA_KEY="bench-data-key",
            CLOUDMARKET_SECRET_KEY="bench-secret-key",
            CLOUDMARKET_VAR_DIR=tempfile.mkdtemp(prefix="cm-bench-"),
            CLOUDMARKET_LOG_LEVEL="WARNING",
        )
        subprocess.run([sys.executable, "-m", module, "--measure", *args], env=env, check=True)


@dataclass
class Deployment:
    """A production-mode deployment: migrated database, web processes, workers."""

    env: dict[str, str]
    web_ports: list[int] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.web_ports]

    def pids(self, kind: str) -> list[int]:
        return [p.popen.pid for p in self.procs if kind in p.log.name]


@contextlib.contextmanager
def deployment(database_url: str, *, web: int = 1, workers: int = 0, **env: str) -> Iterator[Deployment]:
    namespace = f"cmbench{uuid.uuid4().hex[:6]}"
    environment = clean_env(
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        CLOUDMARKET_REDIS_NAMESPACE=namespace,
        CLOUDMARKET_SECRET_KEY="bench-secret",
        CLOUDMARKET_DATA_KEY="bench-data-key",
        CLOUDMARKET_LOG_LEVEL="WARNING",
        CLOUDMARKET_API_RATE_LIMIT="100000000",
        **env,
    )
    result = cli(["migrate"], environment)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    dep = Deployment(env=environment)
    try:
        for _ in range(web):
            port = free_port()
            dep.web_ports.append(port)
            dep.procs.append(Proc(["serve", "--port", str(port)], environment, f"web{port}"))
        for i in range(workers):
            dep.procs.append(Proc(["worker"], environment, f"worker{i}"))
        for port, proc in zip(dep.web_ports, dep.procs, strict=False):
            proc.wait_for(f"http://127.0.0.1:{port}/healthz")
        yield dep
    finally:
        for proc in dep.procs:
            proc.stop()
        _flush_namespace(namespace)


def _flush_namespace(namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int


def wrk(
    url: str,
    *,
    seconds: int = 10,
    connections: int = 32,
    threads: int = 2,
    headers: Sequence[str] = (),
    script: str | None = None,
) -> WrkResult:
    """Load ``url`` with wrk (Debian package `wrk`) and return its figures."""
    if shutil.which("wrk") is None:
        raise SystemExit("the HTTP benchmarks need wrk: apt install wrk")
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for header in headers:
        args += ["-H", header]
    if script:
        args += ["-s", script]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {m.group(1): _ms(m.group(2)) for m in re.finditer(r"^\s+(50|90|99)%\s+(\S+)", out, re.MULTILINE)}
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    return WrkResult(rps, pct.get("50", 0.0), pct.get("90", 0.0), pct.get("99", 0.0), errors)


@dataclass
class HttpClient:
    """One simulated client: where it posts, with which headers and cookies, and what body."""

    url: str
    body: Callable[[], Any]
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass
class LoadResult:
    seconds: float
    latencies_ms: list[float]
    statuses: Counter[int]
    failures: int

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def per_second(self) -> float:
        """Successful requests per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.failures + sum(self.statuses.values()) - self.ok


def http_load(clients: Sequence[HttpClient], *, seconds: float, warmup: float = 2.0) -> LoadResult:
    """POST from every client at once, each waiting for its answer before the next request
    (a closed loop), for ``warmup`` + ``seconds``; only the requests that start after the
    warm-up count.  An ``Idempotency-Key`` header of ``"new"`` becomes a fresh key each time."""
    return asyncio.run(_load(clients, seconds, warmup))


async def _load(clients: Sequence[HttpClient], seconds: float, warmup: float) -> LoadResult:
    import httpx

    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    failures = 0
    started = time.perf_counter()
    measure_from = started + warmup
    stop_at = measure_from + seconds

    async def run(spec: HttpClient) -> None:
        nonlocal failures
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(cookies=spec.cookies, timeout=60, limits=limits) as client:
            while (now := time.perf_counter()) < stop_at:
                headers = dict(spec.headers)
                if headers.get("Idempotency-Key") == "new":
                    headers["Idempotency-Key"] = uuid.uuid4().hex
                try:
                    response = await client.post(spec.url, json=spec.body(), headers=headers)
                except httpx.HTTPError:
                    if now >= measure_from:
                        failures += 1
                    continue
                if now >= measure_from:
                    latencies.append((time.perf_counter() - now) * 1000)
                    statuses[response.status_code] += 1

    await asyncio.gather(*(run(c) for c in clients))
    return LoadResult(time.perf_counter() - measure_from, sorted(latencies), statuses, failures)


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of a process and its children, in MiB; read it before
    the process ends."""
    total = 0.0
    for each in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
    return total


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *_descendants(int(child))]
    return found


def env_int(name: str, default: int) -> int:
    """A size from the environment (``BENCH_...``), or its default."""
    raw = os.environ.get(name, "").strip().replace("_", "")
    return int(raw) if raw else default


def _ms(text: str) -> float:
    value = float(re.match(r"[\d.]+", text).group(0))  # type: ignore[union-attr]
    if text.endswith("us"):
        return value / 1000
    if text.endswith("ms"):
        return value
    if text.endswith("s"):
        return value * 1000
    return value


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) of ``values``, by linear interpolation."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[max(0, min(998, int(q * 10) - 1))]


def figure(label: str, value: float | str, unit: str = "") -> None:
    """One printed figure, aligned."""
    shown = f"{value:,.1f}" if isinstance(value, float) else str(value)
    print(f"   {label:<58} {shown:>12} {unit}")


def household_rows(rng: random.Random, count: int, communities: Sequence[int]) -> list[dict[str, Any]]:
    """``count`` households of levels 1–3 (2 : 3 : 5) in random communities, for ``db.bulk_insert``."""
    return [
        {
            "code": f"B{i:08d}",
            "community": rng.choice(communities),
            "category": "dibao",
            "level": rng.choices((1, 2, 3), weights=(2, 3, 5))[0],
        }
        for i in range(count)
    ]
