"""Fixtures of the households tests: the demo district, stewards scoped to it, households."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from households import services
from households.areas import seed_demo_areas
from marketplace import accounts
from marketplace.auth import LinkKind, Principal, Role
from tests.helpers import make_id

ADMIN = Principal(user_id=None, role=Role.ADMIN)


@pytest.fixture
async def area() -> dict[str, Any]:
    """The demo district; ``area["communities"]`` maps names to ids."""
    return await seed_demo_areas()


@pytest.fixture
def community(area) -> int:
    return area["communities"]["尧化门社区"]


@pytest.fixture
def other_community(area) -> int:
    return area["communities"]["马群社区"]


@pytest.fixture
def steward(logged_in):
    """A logged-in steward of the given communities: ``client, user = await steward(cid)``."""

    async def make(*community_ids: int) -> tuple[Any, dict]:
        client, user = await logged_in("steward")
        for cid in community_ids:
            await accounts.link(user["id"], LinkKind.COMMUNITY, cid)
        return client, user

    return make


def member_data(
    name: str = "张桂英", born: date = date(1941, 3, 15), seq: int = 2, **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "id_number": make_id(born, seq),
        "relation": "head",
        "can_use_phone": False,
        **extra,
    }


@pytest.fixture
def make_household():
    """Register a household directly through the service (as an admin)."""
    counter = iter(range(1, 10_000))

    async def make(community_id: int, *, members: list[dict] | None = None, **fields: Any) -> int:
        n = next(counter)
        data = {
            "code": f"T-{n:04d}",
            "community_id": community_id,
            "address": f"测试路{n}号",
            "phone": f"1390000{n:04d}",
            "category": "dibao",
            "groups": [],
            **fields,
        }
        # By default one member whom no rule counts: born 1970, uses a phone.
        default = member_data(born=date(1970, 1, 1), seq=2 * n, can_use_phone=True)
        return await services.create_household(ADMIN, data, members or [default])

    return make


@pytest.fixture
def resident_of(logged_in):
    """A logged-in resident linked to a household: ``client, user = await resident_of(hid)``."""

    async def make(household_id: int) -> tuple[Any, dict]:
        client, user = await logged_in("resident")
        await accounts.link(user["id"], LinkKind.HOUSEHOLD, household_id)
        return client, user

    return make
