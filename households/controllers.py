"""Routes of `households`."""

from typing import Any

ROUTES: list[Any] = []
