"""``cloudmarket``: run, migrate, seed and check the service."""

from __future__ import annotations

import asyncio
import getpass
import logging
import signal
import sys
from typing import Any

import click

from marketplace import logs
from marketplace.settings import get_settings

log = logging.getLogger("cloudmarket.cli")


def _setup() -> None:
    logs.configure(get_settings().log_level)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _prepare_database(*, auto_migrate: bool) -> None:
    """Migrate (embedded) or refuse to start on an outdated schema (production)."""
    from marketplace import db

    try:
        await db.ping()
    except Exception as exc:
        raise click.ClickException(f"cannot reach the database at DATABASE_URL: {exc}") from exc
    if auto_migrate:
        for line in await db.migrate():
            log.debug(line)
        return
    pending = await db.pending_migrations()
    if pending:
        raise click.ClickException(
            f"{len(pending)} migration(s) not applied yet ({', '.join(pending[:5])}...); "
            "run `cloudmarket migrate` first"
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Cloud Supermarket: service-type social assistance.

    With no environment set, everything runs embedded: a SQLite database and an in-process
    job queue under ./var/.  Set DATABASE_URL and REDIS_URL for production.
    """


@main.command()
@click.option("--host", default=None, help="Address to bind (default: HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to bind (default: PORT or 8000).")
@click.option("--workers", type=int, default=None, help="Web processes (default: WEB_CONCURRENCY or 1).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the web pages and the API.

    Embedded mode also applies migrations, loads the demo data on first start and runs the
    job queue in this process.  In production, run any number of these behind a proxy.
    """
    import uvicorn

    from marketplace import demo

    _setup()
    settings = get_settings()

    async def prepare() -> str:
        await _prepare_database(auto_migrate=settings.embedded)
        if settings.demo_data:
            creds = await demo.seed_demo()
            return demo.format_credentials(creds)
        return ""

    banner = _run(prepare())
    url = f"http://{host or settings.host}:{port or settings.port}"
    mode = "embedded (SQLite + in-process jobs)" if settings.embedded else "production"
    click.echo(f"Cloud Supermarket on {url} — {mode}")
    if banner:
        click.echo(banner)
    uvicorn.run(
        "marketplace.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.web_workers,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=settings.trusted_proxies,
        forwarded_allow_ips="*" if settings.trusted_proxies else None,
        timeout_graceful_shutdown=10,
    )


@main.command()
@click.option(
    "--threads", type=int, default=None, help="Actor threads (default: CLOUDMARKET_WORKER_THREADS)."
)
@click.option(
    "--queues",
    default="",
    help="Only these queues, comma-separated (default: all), e.g. routing,routing_urgent "
    "for workers that do nothing but route.",
)
def worker(threads: int | None, queues: str) -> None:
    """Run actors and relay the outbox; run any number of these beside the web processes."""
    from marketplace import db, outbox
    from marketplace.broker import broker, load_actors, new_worker

    _setup()
    settings = get_settings()
    if not settings.redis_url:
        raise click.ClickException(
            "REDIS_URL is not set: in embedded mode `cloudmarket serve` runs the jobs itself"
        )
    chosen = {q.strip() for q in queues.split(",") if q.strip()} or None
    if chosen:
        load_actors()
        declared = broker.get_declared_queues()
        unknown = sorted(chosen - declared)
        if unknown:
            raise click.ClickException(
                f"no such queue: {', '.join(unknown)}; the queues are {', '.join(sorted(declared))}"
            )

    async def run() -> None:
        await _prepare_database(auto_migrate=False)
        await db.open_pool()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        w = new_worker(threads, chosen)
        w.start()
        log.info(
            "worker started",
            extra={
                "threads": w.worker_threads,
                "queues": ",".join(sorted(chosen or w.broker.get_declared_queues())),
            },
        )
        try:
            await outbox.run_relay(stop)
        finally:
            await asyncio.to_thread(w.stop)
            await db.close_pool()
            log.info("worker stopped")

    _run(run())


@main.command()
def migrate() -> None:
    """Apply the database migrations not yet applied (safe to run from several processes)."""
    from marketplace import db

    _setup()
    lines = _run(db.migrate())
    for line in lines:
        click.echo(line)
    click.echo("migrations applied")


@main.command("seed-demo")
def seed_demo() -> None:
    """Load the demo data (a district, providers, households, one account per role)."""
    from marketplace import demo

    _setup()

    async def run() -> str:
        await _prepare_database(auto_migrate=get_settings().embedded)
        return demo.format_credentials(await demo.seed_demo())

    click.echo(_run(run()))


@main.command("create-user")
@click.option("--phone", required=True, help="Mobile number, the login.")
@click.option("--name", "display_name", required=True, help="Name shown on pages.")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["resident", "provider_staff", "volunteer", "steward", "admin"]),
    help="What the account may do.",
)
@click.option("--password", default=None, help="Password (asked for when not given).")
def create_user(phone: str, display_name: str, role: str, password: str | None) -> None:
    """Create an account (for example the first administrator)."""
    from marketplace import accounts
    from marketplace.errors import DomainError

    _setup()
    if password is None:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            raise click.ClickException("the passwords differ")

    async def run() -> int:
        await _prepare_database(auto_migrate=get_settings().embedded)
        user = await accounts.create_user(
            phone=phone, display_name=display_name, role=role, password=password
        )
        return int(user.id)

    try:
        user_id = _run(run())
    except DomainError as exc:
        details = "; ".join(f"{e.field}: {e.text()}" for e in exc.errors)
        raise click.ClickException(f"{exc.text()} {details}".strip()) from exc
    click.echo(f"created user {user_id} ({role}, {phone})")


@main.command("create-api-client")
@click.option("--name", required=True, help="The system that will use the token.")
@click.option("--scope", "scopes", multiple=True, help="A scope to grant (repeatable), e.g. signals:write.")
def create_api_client(name: str, scopes: tuple[str, ...]) -> None:
    """Issue an API token for an integration; it is printed once."""
    from marketplace import accounts

    _setup()

    async def run() -> accounts.IssuedClient:
        await _prepare_database(auto_migrate=get_settings().embedded)
        return await accounts.create_api_client(name, list(scopes))

    issued = _run(run())
    click.echo(f"client {issued.client_id}: {issued.token}")


@main.command()
@click.option("--generate-only", is_flag=True, help="Generate the district and stop (no replay of orders).")
@click.option("--households", type=click.IntRange(1, 9_999_999), default=50_000, show_default=True)
@click.option("--providers", type=click.IntRange(0), default=400, show_default=True, help="Organizations.")
@click.option("--volunteers", type=click.IntRange(0), default=2_000, show_default=True)
@click.option(
    "--orders",
    type=click.IntRange(1, 1_000_000),
    default=5_000,
    show_default=True,
    help="Bookings in the replayed day.",
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="The same seed gives the same district and day."
)
def simulate(
    *, generate_only: bool, households: int, providers: int, volunteers: int, orders: int, seed: int
) -> None:
    """Generate a realistic district, then replay a day of orders in it through the real services.

    Writes into the database of DATABASE_URL (the embedded SQLite file when unset).  The district
    (9 streets, 120 communities, households, providers, volunteers) is generated when the
    database has none yet; --generate-only stops there and wants a fresh database.  The replay
    grants the month's credits, books --orders services through the day (a morning peak),
    routes them, lets each provider accept, decline or stay silent by its habits, and serves
    and confirms what was accepted, on a moved clock; then it prints what happened.
    """
    from households.tables import District
    from marketplace import db
    from marketplace.simulation import district, report
    from marketplace.simulation.generate import AlreadyGenerated, Sizes, generate
    from marketplace.simulation.replay import replay

    _setup()
    sizes = Sizes(households=households, providers=providers, volunteers=volunteers)

    async def run() -> tuple[Any, Any]:
        await _prepare_database(auto_migrate=get_settings().embedded)
        await db.open_pool()
        try:
            summary = None
            if generate_only or not await District.exists().where(District.code == district.DISTRICT_CODE):
                with click.progressbar(
                    length=sizes.units, label="Generating the district", show_pos=True
                ) as bar:
                    summary = await generate(sizes, seed, bar.update)
                click.echo(report.format_summary(summary))
            if generate_only:
                return summary, None
            with click.progressbar(length=orders, label="Replaying a day of orders", show_pos=True) as bar:
                return summary, await replay(orders, seed, progress=bar.update)
        finally:
            await db.close_pool()

    try:
        _summary, outcome = _run(run())
    except AlreadyGenerated as exc:
        raise click.ClickException(
            f"this database holds a simulated district ({exc}) already: generate into a fresh database"
        ) from exc
    if outcome is not None:
        click.echo(report.format_replay(outcome))


@main.command()
def check() -> None:
    """Check the configuration, the database, its migrations and Redis; exit 1 on a problem."""
    from marketplace import db, kv

    _setup()
    settings = get_settings()
    for key, value in settings.public().items():
        click.echo(f"{key:24} {value}")

    async def run() -> list[str]:
        problems = []
        try:
            await db.ping()
            pending = await db.pending_migrations()
            if pending:
                problems.append(f"{len(pending)} migration(s) not applied: run `cloudmarket migrate`")
        except Exception as exc:
            problems.append(f"database: {exc}")
        try:
            await kv.ping()
            await kv.close()
        except Exception as exc:
            problems.append(f"redis: {exc}")
        return problems

    problems = _run(run())
    for problem in problems:
        click.echo(f"PROBLEM  {problem}", err=True)
    if problems:
        sys.exit(1)
    click.echo("all checks passed")


if __name__ == "__main__":
    main()
