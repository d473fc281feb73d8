"""Actors of `notifications`: dispatch requests, deliver each message, sweep up lost ones.

Each takes ids, reads the rows again and calls the service; each is safe to run twice.
Gateway failures are retried by ``deliver`` itself on the service clock (the delay and the
reason are in the delivery log); Dramatiq's own retries are left for the unexpected.
"""

from __future__ import annotations

from marketplace.broker import task
from marketplace.outbox import every, periodic
from notifications import services

QUEUE = "notifications"


@task(queue=QUEUE)
async def dispatch(notification_ids: list[int]) -> None:
    """Fill inboxes and queue the outgoing deliveries of these requests."""
    await services.dispatch(notification_ids)


@task(queue=QUEUE)
async def deliver(delivery_id: int) -> None:
    """Send one message on one channel, if it is due and not sent yet."""
    await services.deliver(delivery_id)


@periodic(every(60))
@task(queue=QUEUE, priority=10)
async def sweep(slot: str) -> None:
    """Re-send deliveries that wait past their time with no message on its way."""
    await services.sweep()
