"""The one Dramatiq broker of the service; import this module before any actor.

With ``REDIS_URL`` set, a Redis broker shared by every process; without it an in-process
broker whose worker threads run inside the web process.  Actors are ``async def`` functions
declared with :func:`task`: they take ids, read the rows again and call a service, so that
running one twice does no harm.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from marketplace.settings import Settings, get_settings

log = logging.getLogger("cloudmarket.jobs")

# Every package that declares actors; the worker imports them all.
TASK_MODULES = (
    "marketplace.tasks",
    "notifications.tasks",
    "households.tasks",
    "providers.tasks",
    "orders.tasks",
    "reports.tasks",
    # Not actors: publishes each committed move to live watchers, in every process that moves orders.
    "orders.live",
)

DEFAULT_QUEUE = "default"
MAX_RETRIES = 5
MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 5 * 60_000
TIME_LIMIT_MS = 10 * 60_000

P = ParamSpec("P")
R = TypeVar("R")


def _run_on_actor_loop(coro: Coroutine[Any, Any, Any]) -> None:
    """Run a coroutine on the actors' event loop from a worker thread, logging any error."""
    loop_thread = get_event_loop_thread()
    if loop_thread is None:  # the worker is shutting down
        coro.close()
        return
    try:
        loop_thread.run_coroutine(coro)
    except Exception:
        log.exception("bookkeeping after an actor run failed")


class DatabaseMiddleware(Middleware):
    """Opens a connection pool on the actors' event loop when a worker boots."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from marketplace import db

        _run_on_actor_loop(db.open_pool())

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from marketplace import db

        _run_on_actor_loop(db.close_pool())


class Bookkeeping(Middleware):
    """One log line per actor run; the outbox row is finished on success, recorded on failure.

    Its "after" hook runs after the one of ``Retries``, so that ``message.failed`` already says
    whether this was the last attempt.
    """

    def __init__(self) -> None:
        self._local = threading.local()  # before and after run on the same worker thread

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._local.started = time.perf_counter()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        from marketplace import outbox

        started = getattr(self._local, "started", None)
        elapsed_ms = (time.perf_counter() - started) * 1000 if started else 0.0
        retries = message.options.get("retries", 0)
        if exception is None:
            outcome = "ok"
            _run_on_actor_loop(outbox.finish(message.message_id))
        elif message.failed:
            outcome = "failed"
            _run_on_actor_loop(outbox.give_up(message, exception))
        else:
            outcome = "retry"
        log.log(
            logging.ERROR if outcome == "failed" else logging.INFO,
            "actor run",
            extra={
                "actor": message.actor_name,
                "queue": message.queue_name,
                "message_id": message.message_id,
                "outcome": outcome,
                "retries": retries,
                "duration_ms": round(elapsed_ms, 1),
                "error": type(exception).__name__ if exception else None,
            },
        )


def build_broker(settings: Settings) -> dramatiq.Broker:
    """The broker for these settings, with the middleware every actor relies on."""
    middleware: list[Middleware] = [
        AgeLimit(),
        TimeLimit(time_limit=TIME_LIMIT_MS),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        # "after" hooks run in reverse order: Bookkeeping sees the message once Retries decided.
        Bookkeeping(),
        Retries(max_retries=MAX_RETRIES, min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS),
        CurrentMessage(),
        AsyncIO(),
        DatabaseMiddleware(),
    ]
    if settings.redis_url:
        return RedisBroker(  # type: ignore[no-untyped-call]
            url=settings.redis_url,
            namespace=f"{settings.redis_namespace}:dramatiq",
            middleware=middleware,
        )
    return StubBroker(middleware=middleware)


broker = build_broker(get_settings())
dramatiq.set_broker(broker)


def task(
    *,
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
    max_retries: int = MAX_RETRIES,
    **options: Any,
) -> Callable[[Callable[P, Awaitable[R]]], dramatiq.Actor[P, Any]]:
    """Declare an actor; lower ``priority`` runs first when a worker has a choice."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> dramatiq.Actor[P, Any]:
        return dramatiq.actor(  # type: ignore[call-overload,no-any-return]
            fn,
            actor_name=f"{fn.__module__}.{fn.__name__}",
            queue_name=queue,
            priority=priority,
            max_retries=max_retries,
            **options,
        )

    return decorate


def load_actors() -> None:
    """Import every package's ``tasks`` module so that all actors and queues are declared."""
    for name in TASK_MODULES:
        importlib.import_module(name)


def new_worker(threads: int | None = None, queues: set[str] | None = None) -> dramatiq.Worker:
    """A worker over ``queues``, or every declared queue (not started)."""
    settings = get_settings()
    load_actors()
    return dramatiq.Worker(
        broker,
        queues=queues,
        worker_threads=threads or settings.worker_threads,
        worker_timeout=settings.worker_timeout_ms,
    )
