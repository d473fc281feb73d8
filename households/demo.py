"""Demo data of `households`: the demo district, the steward's communities and a few households."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from households import services
from households.areas import seed_demo_areas
from households.idnumbers import check_character
from households.tables import Member
from marketplace import accounts
from marketplace.auth import LinkKind, Principal, Role
from marketplace.demo import DemoContext

STEWARD_COMMUNITIES = ("尧化门社区", "新尧社区")


def demo_id(born: date, seq: int) -> str:
    """A well-formed but invented ID number (Qixia's area code, a demo sequence)."""
    first17 = f"320113{born:%Y%m%d}{seq:03d}"
    return first17 + check_character(first17)


def _member(name: str, born: date, seq: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "id_number": demo_id(born, seq),
        "relation": "head",
        "can_use_phone": False,
        **extra,
    }


# (community, household fields, members); the first is the demo resident's household.
DEMO_HOUSEHOLDS: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
    (
        "尧化门社区",
        {
            "code": "QX-YH-0001",
            "address": "尧化街道尧化门社区晨光路12号3栋201室",
            "phone": "13800000005",
            "category": "tekun",
            "groups": ["elderly_alone"],
        },
        [_member("张桂英", date(1941, 3, 15), 2, health="高血压，行动不便", can_use_phone=True)],
    ),
    (
        "尧化门社区",
        {
            "code": "QX-YH-0002",
            "address": "尧化街道尧化门社区晨光路8号1栋102室",
            "phone": "025-85550102",
            "category": "dibao",
            "groups": ["disabled"],
        },
        [
            _member("王建国", date(1962, 7, 1), 11, disability_grade=2),
            _member(
                "李秀兰", date(1964, 11, 23), 22, relation="spouse", phone="13900001111", can_use_phone=True
            ),
        ],
    ),
    (
        "新尧社区",
        {
            "code": "QX-XY-0001",
            "address": "尧化街道新尧社区新尧路66号5栋301室",
            "phone": "13900002222",
            "category": "dibao_marginal",
            "groups": ["single_parent"],
        },
        [
            _member("赵丽", date(1986, 5, 9), 24, phone="13900002222", can_use_phone=True),
            _member("赵小宇", date(2015, 9, 30), 13, relation="child"),
        ],
    ),
    (
        "新尧社区",
        {
            "code": "QX-XY-0002",
            "address": "尧化街道新尧社区新尧路20号2栋101室",
            "phone": "13900003333",
            "category": "expenditure_hardship",
            "groups": ["serious_illness"],
        },
        [_member("孙志强", date(1958, 2, 14), 33, health="尿毒症，每周透析三次", can_use_phone=True)],
    ),
    (
        "马群社区",
        {
            "code": "QX-MQ-0001",
            "address": "马群街道马群社区马群新街9号4栋502室",
            "phone": "13900004444",
            "category": "at_risk",
            "groups": [],
        },
        [_member("周海燕", date(1975, 8, 8), 44, can_use_phone=True)],
    ),
]


async def seed(ctx: DemoContext) -> None:
    areas = await seed_demo_areas()
    ctx.extra["areas"] = areas
    communities: dict[str, int] = areas["communities"]
    steward = ctx.users[Role.STEWARD]
    for name in STEWARD_COMMUNITIES:
        await accounts.link(steward, LinkKind.COMMUNITY, communities[name])
    as_steward = Principal(
        user_id=steward,
        role=Role.STEWARD,
        links={LinkKind.COMMUNITY.value: frozenset(str(communities[n]) for n in STEWARD_COMMUNITIES)},
    )
    as_admin = Principal(user_id=ctx.users[Role.ADMIN], role=Role.ADMIN)
    household_ids: dict[str, int] = {}
    for community, fields, members in DEMO_HOUSEHOLDS:
        creator = as_steward if community in STEWARD_COMMUNITIES else as_admin
        data = {**fields, "community_id": communities[community]}
        household_ids[fields["code"]] = await services.create_household(creator, data, members)
    ctx.extra["households"] = household_ids
    # The demo resident is the head of the first household.
    resident = ctx.users[Role.RESIDENT]
    first = household_ids["QX-YH-0001"]
    head = await Member.select(Member.id).where(Member.household == first).order_by(Member.id).first()
    await accounts.link(resident, LinkKind.HOUSEHOLD, first)
    if head is not None:
        await accounts.link(resident, LinkKind.MEMBER, head["id"])
    await _seed_monitoring(ctx, as_steward, as_admin)


async def _seed_monitoring(ctx: DemoContext, as_steward: Principal, as_admin: Principal) -> None:
    """Duty and supervision in 尧化街道, a few signals from other departments, one warning handled."""
    from households import monitoring
    from households.tables import Community, HouseholdWarning, Street
    from marketplace import clock

    steward = ctx.users[Role.STEWARD]
    communities: dict[str, int] = ctx.extra["areas"]["communities"]
    for name in STEWARD_COMMUNITIES:
        await monitoring.set_duty_steward(as_admin, communities[name], steward)
    street = await Street.select(Street.id).where(Street.name == "尧化街道").first()
    if street is not None:
        await monitoring.set_supervisor(as_admin, street["id"], steward)
    yaohuamen = (
        await Community.select(Community.code).where(Community.id == communities["尧化门社区"]).first()
    )
    day = (clock.local_now().date() - timedelta(days=2)).isoformat()
    stranger = demo_id(date(1979, 10, 1), 55)
    await monitoring.ingest(
        [
            {
                "event_id": "YB-2025-0001",
                "kind": "hospital_bill",
                "occurred_on": day,
                "id_number": demo_id(date(1962, 7, 1), 11),
                "details": {"amount": 68000, "out_of_pocket_share": 0.42},
            },
            {
                "event_id": "SD-2025-0107",
                "kind": "utility_arrears",
                "occurred_on": day,
                "household_code": "QX-XY-0001",
                "details": {"amount": 860, "months": 4},
            },
            {
                "event_id": "YJ-2025-0042",
                "kind": "accident",
                "occurred_on": day,
                "household_code": "QX-XY-0002",
            },
            {
                "event_id": "YB-2025-0002",
                "kind": "hospital_bill",
                "occurred_on": day,
                "id_number": stranger,
                "person_name": "陈国强",
                "community_code": yaohuamen["code"] if yaohuamen else "",
                "details": {"amount": 23000, "out_of_pocket_share": 0.6},
            },
        ],
        source="api",
        sender="demo",
    )
    handled = (
        await HouseholdWarning.select(HouseholdWarning.id)
        .where(HouseholdWarning.household == ctx.extra["households"]["QX-XY-0002"])
        .first()
    )
    if handled is not None:
        services = await monitoring.service_labels(active_only=True)
        visit = {
            "visited_on": clock.local_now().date().isoformat(),
            "met": "孙志强本人",
            "findings": "骑车摔伤左臂，已就医，透析照常；独自生活，需要送餐。",
            "needs": ["medical_aid", *[c for c in ("meals",) if c in services]],
        }
        await monitoring.record_visit(as_steward, handled["id"], visit)
        await monitoring.handle(
            as_steward,
            handled["id"],
            {"outcome": "referral", "programme": "医疗救助", "note": "转介街道医疗救助窗口，家属已知情。"},
        )
