"""Realistic contexts for every event, as the orders and households packages will send them."""

from __future__ import annotations

from datetime import UTC, date, datetime

from notifications.events import Event

WHEN = datetime(2026, 12, 1, 6, 30, tzinfo=UTC)  # 14:30 in Nanjing
SOON = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)

ZH: dict[Event, dict] = {
    Event.NEW_OFFER: {
        "order_no": "20261201-0042",
        "service": "保洁",
        "community": "尧化门社区",
        "when": WHEN,
        "respond_by": SOON,
        "link": "/provider/offers/42",
    },
    Event.ORDER_ACCEPTED: {
        "order_no": "20261201-0042",
        "service": "陪诊",
        "provider": "栖霞区仁爱社工服务中心",
        "when": WHEN,
        "resident": "王秀英",
        "link": "/orders/42",
    },
    Event.WORKER_ON_THE_WAY: {
        "order_no": "20261201-0042",
        "service": "代购送药",
        "worker": "李建国",
        "eta": SOON,
        "resident": "王秀英",
        "link": "/orders/42",
    },
    Event.ORDER_DONE: {
        "order_no": "20261201-0042",
        "service": "助餐",
        "resident": "王秀英",
        "link": "/orders/42",
    },
    Event.CONFIRMATION_CODE: {"order_no": "20261201-0042", "service": "保洁", "code": "482913"},
    Event.ORDER_ESCALATED: {
        "order_no": "20261201-0042",
        "service": "维修",
        "community": "燕子矶街道和畅社区",
        "level": 1,
        "reason": "本社区暂无服务商",
        "link": "/steward/orders/42",
    },
    Event.SLA_MISSED: {
        "order_no": "20261201-0042",
        "service": "助浴",
        "community": "燕子矶街道和畅社区",
        "level": 2,
        "target": "acceptance",
        "due_at": SOON,
        "link": "/steward/orders/42",
    },
    Event.WARNING_ASSIGNED: {
        "warning_no": "YJ20261201-007",
        "community": "迈皋桥街道华电社区",
        "signal": "医疗费用",
        "level": 1,
        "household": "张**",
        "link": "/steward/warnings/7",
    },
    Event.VERIFICATION_OVERDUE: {
        "warning_no": "YJ20261201-007",
        "community": "迈皋桥街道华电社区",
        "steward": "李晓燕",
        "due_at": SOON,
        "link": "/steward/warnings/7",
    },
    Event.CREDITS_GRANTED: {"month": date(2026, 12, 1), "credits": 120, "balance": 185, "link": "/credits"},
    Event.ACTIVATION_CODE: {"code": "730415", "minutes": 10},
    Event.CONSENT_CODE: {"code": "518203", "steward": "李晓燕", "minutes": 10},
}

# The same events with names an English reader would see (pinyin place names).
EN: dict[Event, dict] = {
    event: {
        **ctx,
        **{
            k: v
            for k, v in {
                "community": "Heguang, Yanziji",
                "provider": "Ren'ai Social Work Centre",
                "resident": "Wang Xiuying",
                "worker": "Li Jianguo",
                "steward": "Li Xiaoyan",
                "household": "Zhang**",
                "signal": "Hospital bill",
                "reason": "No provider covers this community",
            }.items()
            if k in ctx
        },
    }
    for event, ctx in ZH.items()
}
_SERVICES = {
    "保洁": "Cleaning",
    "陪诊": "Hospital escort",
    "代购送药": "Medicine purchase",
    "助餐": "Meals",
    "维修": "Home repair",
    "助浴": "Bathing",
}
for _ctx in EN.values():
    if "service" in _ctx:
        _ctx["service"] = _SERVICES[_ctx["service"]]

# Who receives each event in the tests.
RECIPIENT_ROLE = {
    Event.NEW_OFFER: "provider_staff",
    Event.ORDER_ACCEPTED: "resident",
    Event.WORKER_ON_THE_WAY: "resident",
    Event.ORDER_DONE: "resident",
    Event.CONFIRMATION_CODE: "resident",
    Event.ORDER_ESCALATED: "steward",
    Event.SLA_MISSED: "steward",
    Event.WARNING_ASSIGNED: "steward",
    Event.VERIFICATION_OVERDUE: "steward",
    Event.CREDITS_GRANTED: "resident",
}
