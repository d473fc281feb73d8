"""Exit 0 when PostgreSQL and Redis answer at the given URLs (used by `make test`)."""

from __future__ import annotations

import asyncio
import sys


async def _check(database_url: str, redis_url: str) -> None:
    import asyncpg
    import redis.asyncio as aioredis

    conn = await asyncio.wait_for(asyncpg.connect(database_url), 3)
    await conn.close()
    client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=3)
    try:
        await client.ping()
    finally:
        await client.aclose()


def main() -> int:
    database_url, redis_url = sys.argv[1], sys.argv[2]
    try:
        asyncio.run(_check(database_url, redis_url))
    except Exception as exc:
        print(f"not reachable: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
