"""Routes of `notifications`."""

from typing import Any

ROUTES: list[Any] = []
