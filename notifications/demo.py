"""Demo data of `notifications`: a few messages in each demo account's inbox and the SMS sandbox.

(The resident's "service credits for this month" message is a real one: the credit ledger sends
it when the demo household gets its level.)

They go through ``notify`` like real ones, so the running service delivers them (and the
SMS sandbox page shows the texts) once the demo starts.  The demo accounts keep no quiet
hours, so that a demo started at night shows its texts at once.
"""

from __future__ import annotations

from datetime import timedelta

from marketplace import clock, db
from marketplace.auth import Role
from marketplace.demo import DemoContext
from notifications.events import Event
from notifications.services import notify
from notifications.tables import Preference


async def seed(ctx: DemoContext) -> None:
    now = clock.now()
    resident, steward = ctx.users[Role.RESIDENT], ctx.users[Role.STEWARD]
    await Preference.insert(*[Preference(user=user_id, channels="{}") for user_id in ctx.users.values()])
    order = {"order_no": "DEMO-0001", "service": "助餐"}
    async with db.atomic():
        await notify(
            Event.ORDER_ACCEPTED,
            [resident],
            {**order, "provider": "栖霞区仁爱社工服务中心", "when": now + timedelta(hours=3)},
            dedupe_key="demo:order:1:accepted",
        )
        await notify(
            Event.NEW_OFFER,
            [ctx.users[Role.PROVIDER_STAFF], ctx.users[Role.VOLUNTEER]],
            {
                **order,
                "community": "尧化门社区",
                "when": now + timedelta(hours=3),
                "respond_by": now + timedelta(minutes=30),
            },
            dedupe_key="demo:order:1:offered",
        )
        await notify(
            Event.WARNING_ASSIGNED,
            [steward],
            {"warning_no": "DEMO-YJ-01", "community": "尧化门社区", "signal": "医疗费用", "level": 1},
            dedupe_key="demo:warning:1",
            urgent=True,  # a hospital bill for a level 1 household is a safety matter
        )
        await notify(
            Event.ACTIVATION_CODE,
            ["13800000099"],
            {"code": "246810", "minutes": 10},
            dedupe_key="demo:activation:1",
        )
