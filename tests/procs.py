"""Real processes for tests: `cloudmarket` commands, a private Redis or PostgreSQL, free ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import httpx

ROOT = Path(__file__).resolve().parent.parent


def pg_admin(server_url: str, sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on a PostgreSQL server, from sync code."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str = "cm_fresh") -> Iterator[str]:
    """A new, empty database on the server of ``server_url``, dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    pg_admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield urlunparse(urlparse(server_url)._replace(path=f"/{name}"))
    finally:
        pg_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment of a fresh deployment: none of the test run's database or Redis."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CLOUDMARKET_", "DATABASE_URL", "REDIS_URL"))
    }
    env["CLOUDMARKET_PASSWORD_HASH"] = "fast"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


class Proc:
    """A child process whose output goes to a file, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, args: list[str], env: dict[str, str], name: str, *, code: str = ""):
        """``cloudmarket ARGS``, or with ``code`` ``python -c CODE ARGS`` (reading its standard input)."""
        self.log = Path(tempfile.mkstemp(prefix=f"cm-{name}-", suffix=".log")[1])
        self._fh = self.log.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, *(["-c", code] if code else ["-m", "marketplace.cli"]), *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE if code else None,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, url: str, timeout: float = 60) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"process exited with {self.popen.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(url, timeout=2)
            time.sleep(0.2)
        raise AssertionError(f"{url} did not answer in {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 20) -> int:
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            self.popen.stdin.close()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._fh.close()
        return self.popen.returncode


def run_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    """The test run's database, Redis namespace and keys, for a process started by a test."""
    return clean_env(
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
        CLOUDMARKET_REDIS_NAMESPACE=os.environ["CLOUDMARKET_REDIS_NAMESPACE"],
        CLOUDMARKET_SECRET_KEY=os.environ["CLOUDMARKET_SECRET_KEY"],
        CLOUDMARKET_DATA_KEY=os.environ["CLOUDMARKET_DATA_KEY"],
        CLOUDMARKET_VAR_DIR=str(var_dir),
        CLOUDMARKET_LOG_LEVEL="INFO",
        **overrides,
    )


# Imports take most of a worker's start (seconds on a loaded machine): this one does them (the
# migrations' too), then waits for a line on its standard input before it runs `cloudmarket worker`.
WAITING_WORKER = """
import sys
from piccolo.apps.migrations.commands.base import BaseMigrationManager
from piccolo.conf.apps import Finder
from marketplace import cli
from marketplace.broker import load_actors
load_actors()
for app in Finder().get_app_registry().app_configs.values():  # the start checks the migrations
    BaseMigrationManager().get_migration_modules(app.resolved_migrations_folder_path)
sys.stdin.readline()
cli.main(sys.argv[1:])
"""


def waiting_worker(env: dict[str, str], name: str = "worker", threads: int = 2) -> Proc:
    """A `cloudmarket worker` process, imports done, that starts when :func:`relaying` says so."""
    return Proc(["worker", "--threads", str(threads)], env, name, code=WAITING_WORKER)


def relaying(proc: Proc, timeout: float = 90) -> Proc:
    """Start a waiting worker (any other starts by itself) and wait until its outbox relay runs."""
    if proc.popen.stdin is not None:
        proc.popen.stdin.write(b"go\n")
        proc.popen.stdin.close()
    deadline = time.monotonic() + timeout
    while "outbox relay started" not in proc.output():
        if proc.popen.poll() is not None:
            raise AssertionError(f"the worker exited with {proc.popen.returncode}:\n{proc.output()}")
        if time.monotonic() > deadline:
            proc.stop()
            raise AssertionError(f"the worker's relay did not start in {timeout}s:\n{proc.output()}")
        time.sleep(0.01)
    return proc


def started_worker(env: dict[str, str], name: str = "worker", threads: int = 2, timeout: float = 90) -> Proc:
    """A `cloudmarket worker` whose outbox relay runs (so it takes messages from now on)."""
    return relaying(Proc(["worker", "--threads", str(threads)], env, name), timeout)


def cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one `cloudmarket` command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "marketplace.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def private_redis() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A Redis server of the test's own, so that stopping it harms no one else."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise AssertionError("redis-server is not installed (CI installs it)")
    port = free_port()
    proc = start_redis(port)
    try:
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start_redis(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("private redis-server did not start")


def login(base_url: str, phone: str, password: str) -> httpx.Client:
    """A browser-like client logged in at ``base_url``."""
    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=10)
    client.get("/login")
    token = client.cookies.get("cm_csrf")
    response = client.post("/login", data={"phone": phone, "password": password, "_csrf_token": token or ""})
    assert response.status_code == 302, response.text
    return client


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own in a temporary folder, to stop and start at will.

    initdb and the server refuse to run as root: as root (CI) they run as the ``postgres``
    user, which owns the folder.
    """

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.logfile = root / "server.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.bin = _postgres_bin()

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = (
                ["runuser", "-u", "postgres", "--", *command]
                if shutil.which("runuser")
                else ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]
            )
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            raise AssertionError(f"{args[0]} failed: {result.stdout}{result.stderr}\n{self.log()}")

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``fast`` ends every session at once, as a restart does."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        binary = shutil.which("initdb")
        if binary is None:
            raise AssertionError("initdb is not installed (CI installs postgresql)")
        return Path(binary).parent
    return found[-1].parent


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the test's own (trust auth, user postgres), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="cm-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = PrivatePostgres(root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            with contextlib.suppress(Exception):
                server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
