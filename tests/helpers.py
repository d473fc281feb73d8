"""Helpers shared by the tests of several packages: ownership checks and small factories."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from households.idnumbers import check_character


def make_id(born: date, seq: int, area: str = "320113") -> str:
    """A valid 18-character ID number for a birth date; odd ``seq`` for men, even for women."""
    first17 = f"{area}{born:%Y%m%d}{seq:03d}"
    return first17 + check_character(first17)


async def _send(client: Any, method: str, url: str, data: dict[str, Any] | None) -> httpx.Response:
    if method == "GET":
        return await client.get(url)
    if url.startswith("/api/"):
        token = await client.csrf()
        return await client.request(method, url, json=data or {}, headers={"x-csrftoken": token})
    return await client.post_form(url, {k: str(v) for k, v in (data or {}).items()})


async def assert_isolated(
    url: str,
    *,
    allowed: list[Any],
    denied: list[Any],
    missing_url: str | None = None,
    method: str = "GET",
    data: dict[str, Any] | None = None,
) -> None:
    """Prove a record is reachable only by those it belongs to.

    Every client in ``denied`` gets 404 (first, so that a change a denied request might make
    would show); every client in ``allowed`` then gets through.  With ``missing_url`` (the same
    address for an id that does not exist), a denied caller's answer must look exactly like
    the answer about nothing at all: no hint that the record exists.
    """
    for client in denied:
        response = await _send(client, method, url, data)
        assert response.status_code == 404, f"{method} {url}: expected 404, got {response.status_code}"
        if missing_url is not None:
            nothing = await _send(client, method, missing_url, data)
            assert nothing.status_code == 404
            if url.startswith("/api/"):
                strip = {"request_id"}
                assert {k: v for k, v in response.json().items() if k not in strip} == {
                    k: v for k, v in nothing.json().items() if k not in strip
                }
    for client in allowed:
        response = await _send(client, method, url, data)
        assert response.status_code < 400, f"{method} {url}: expected success, got {response.status_code}"
