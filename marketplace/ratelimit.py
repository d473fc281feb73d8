"""Rate limits shared by every process (Redis), or per process in embedded mode."""

from __future__ import annotations

from marketplace import clock, kv
from marketplace.errors import RateLimited


async def check(name: str, ident: str, limit: int, window_seconds: int = 60) -> None:
    """Count one hit on ``name``/``ident``; raise RateLimited past ``limit`` per window."""
    now = clock.now().timestamp()
    window = int(now // window_seconds)
    count = await kv.incr(f"{name}:{ident}:{window}", window_seconds * 2)
    if count > limit:
        retry_after = int((window + 1) * window_seconds - now) + 1
        raise RateLimited(retry_after)
