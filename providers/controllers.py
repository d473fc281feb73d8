"""Routes of `providers`."""

from typing import Any

ROUTES: list[Any] = []
