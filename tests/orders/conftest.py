"""Fixtures of the orders tests."""

from __future__ import annotations

# -- routing and service (orders-routing) ------------------------------------------------------------
from tests.households.conftest import area  # noqa: F401 - fixtures shared with the households tests
from tests.orders.routing_world import world  # noqa: F401 - fixture of the routing and service tests
