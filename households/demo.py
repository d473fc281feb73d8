"""Demo data of `households`: the demo district and the steward's communities."""

from __future__ import annotations

from households.areas import seed_demo_areas
from marketplace import accounts
from marketplace.auth import LinkKind, Role
from marketplace.demo import DemoContext


async def seed(ctx: DemoContext) -> None:
    areas = await seed_demo_areas()
    ctx.extra["areas"] = areas
    steward = ctx.users[Role.STEWARD]
    for name in ("尧化门社区", "新尧社区"):
        await accounts.link(steward, LinkKind.COMMUNITY, areas["communities"][name])
