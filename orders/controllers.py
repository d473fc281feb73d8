"""Routes of `orders`."""

from typing import Any

ROUTES: list[Any] = []
