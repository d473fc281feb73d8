"""Demo data of `providers`: organizations, a volunteer team, an individual volunteer, a pending registration.

The demo provider-staff account (13800000003) acts for the elderly-care centre, the demo
volunteer account (13800000004) is the individual volunteer of the Yaohua team.  No response
figures are made up: they stay empty until orders are served.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from households.tables import Community
from marketplace import accounts
from marketplace.auth import LinkKind, Role
from marketplace.demo import DemoContext
from marketplace.tables import Category
from providers.rules import Action, Kind, Status, credit_code_check_char
from providers.tables import Offering, OpeningHours, Provider, ProviderEvent, ServiceArea, Worker

WEEKDAYS = (0, 1, 2, 3, 4)
EVERY_DAY = (0, 1, 2, 3, 4, 5, 6)


def _credit_code(first17: str) -> str:
    return first17 + credit_code_check_char(first17)


def _hours(days: tuple[int, ...], *periods: tuple[str, str]) -> list[tuple[int, int, int]]:
    def minutes(text: str) -> int:
        hours, mins = text.split(":")
        return int(hours) * 60 + int(mins)

    return [(d, minutes(a), minutes(b)) for d in days for a, b in periods]


@dataclass
class DemoOffering:
    category: str
    communities: list[str]
    hours: list[tuple[int, int, int]]
    title: str = ""
    capacity: int = 3
    duration_minutes: int = 60
    credit_cost: int | None = None


@dataclass
class DemoProvider:
    name: str
    kind: Kind
    description: str
    status: Status = Status.VERIFIED
    name_en: str = ""
    credit_code: str = ""
    contact_name: str = ""
    contact_phone: str = ""
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    offerings: list[DemoOffering] = field(default_factory=list)
    workers: list[tuple[str, str, str]] = field(default_factory=list)


YAOHUA = ["尧化门社区", "新尧社区", "尧林仙居社区"]
XIANLIN = ["仙林社区", "文苑社区", "仙鹤社区"]
MAQUN = ["马群社区", "百水社区", "花岗社区"]
MAIGAOQIAO = ["迈皋桥社区", "华电社区", "和燕路社区"]

CARE_CENTRE = DemoProvider(
    name="栖霞区仙林社区居家养老服务中心",
    name_en="Xianlin Home Care Centre for the Elderly",
    kind=Kind.SOCIAL_ORGANIZATION,
    description="民办非企业单位，运营仙林、尧化片区的老年助餐点，提供上门保洁、助浴和陪伴探访。",
    credit_code=_credit_code("52320113MJ5010203"),
    contact_name="赵主任",
    contact_phone="13800000003",
    address="南京市栖霞区仙林街道文苑路9号",
    latitude=32.1056,
    longitude=118.9307,
    offerings=[
        DemoOffering(
            "meals",
            XIANLIN + YAOHUA[:2],
            _hours(EVERY_DAY, ("10:30", "13:00"), ("16:30", "18:30")),
            title="社区助餐点就餐或送餐上门",
            capacity=20,
            duration_minutes=30,
        ),
        DemoOffering(
            "cleaning",
            XIANLIN + YAOHUA,
            _hours(WEEKDAYS, ("08:00", "12:00"), ("13:30", "17:30")),
            title="上门保洁（约2小时）",
            capacity=4,
            duration_minutes=120,
        ),
        DemoOffering(
            "bathing",
            XIANLIN + YAOHUA[:2],
            _hours((1, 3, 5), ("09:00", "16:00")),
            title="专业助浴",
            capacity=2,
            duration_minutes=90,
        ),
        DemoOffering("companionship", XIANLIN, _hours(EVERY_DAY, ("09:00", "17:00")), capacity=5),
    ],
    workers=[("王阿姨", "13700001001", "助餐点厨师"), ("刘护理员", "13700001002", "助浴员")],
)
SOCIAL_WORK = DemoProvider(
    name="南京栖霞阳光社会工作服务中心",
    name_en="Qixia Sunshine Social Work Centre",
    kind=Kind.SOCIAL_WORK_AGENCY,
    description="专业社工机构，承接困难老人陪诊、跑腿代办和心理陪伴服务。",
    credit_code=_credit_code("52320113MJ5020417"),
    contact_name="孙社工",
    contact_phone="13700002000",
    address="南京市栖霞区迈皋桥街道和燕路371号",
    latitude=32.1089,
    longitude=118.8035,
    offerings=[
        DemoOffering(
            "hospital_escort",
            YAOHUA + MAQUN + MAIGAOQIAO,
            _hours(WEEKDAYS, ("07:00", "17:00")),
            title="陪同就医（半天）",
            capacity=3,
            duration_minutes=240,
        ),
        DemoOffering(
            "errands",
            MAIGAOQIAO + MAQUN,
            _hours(EVERY_DAY, ("08:00", "20:00")),
            capacity=6,
            duration_minutes=45,
        ),
        DemoOffering("companionship", MAIGAOQIAO + YAOHUA, _hours(WEEKDAYS, ("09:00", "18:00")), capacity=4),
    ],
    workers=[("孙社工", "13700002000", "项目主管"), ("周社工", "13700002001", "一线社工")],
)
HOUSEKEEPING = DemoProvider(
    name="南京邻里帮家政服务有限公司",
    name_en="Linlibang Housekeeping Services Co., Ltd.",
    kind=Kind.COMPANY,
    description="家政企业，提供保洁、家电水电维修和上门理发。",
    credit_code=_credit_code("91320113MA1N2K3L4"),
    contact_name="钱经理",
    contact_phone="13700003000",
    address="南京市栖霞区马群街道百水芊城商业街12号",
    latitude=32.0468,
    longitude=118.8956,
    offerings=[
        DemoOffering(
            "cleaning",
            MAQUN + XIANLIN,
            _hours(EVERY_DAY, ("08:00", "18:00")),
            capacity=8,
            duration_minutes=120,
        ),
        DemoOffering(
            "home_repair", MAQUN + MAIGAOQIAO + YAOHUA, _hours(EVERY_DAY, ("08:00", "20:00")), capacity=3
        ),
        DemoOffering("haircut", MAQUN, _hours((5, 6), ("09:00", "17:00")), capacity=2, duration_minutes=40),
    ],
    workers=[("吴师傅", "13700003001", "维修工")],
)
VOLUNTEER_TEAM = DemoProvider(
    name="尧化街道青年志愿服务队",
    name_en="Yaohua Youth Volunteers",
    kind=Kind.VOLUNTEER_TEAM,
    description="街道团工委组织的志愿服务队，为独居老人跑腿代办、代购送药和陪伴探访。",
    contact_name="郑队长",
    contact_phone="13700004000",
    address="南京市栖霞区尧化街道尧新大道1号",
    latitude=32.1270,
    longitude=118.8610,
    offerings=[
        DemoOffering(
            "errands", YAOHUA, _hours(EVERY_DAY, ("08:00", "21:00")), capacity=10, duration_minutes=45
        ),
        DemoOffering(
            "medicine", YAOHUA, _hours(EVERY_DAY, ("08:00", "21:00")), capacity=10, duration_minutes=60
        ),
        DemoOffering("companionship", YAOHUA, _hours((5, 6), ("09:00", "17:00")), capacity=6),
    ],
    workers=[("郑队长", "13700004000", "队长")],
)
PENDING = DemoProvider(
    name="燕子矶街道爱心助老协会",
    kind=Kind.SOCIAL_ORGANIZATION,
    status=Status.PENDING,
    description="社区社会组织，申请提供陪伴探访和跑腿代办服务。",
    credit_code=_credit_code("51320113MJ5031286"),
    contact_name="冯会长",
    contact_phone="13700005000",
    address="南京市栖霞区燕子矶街道和燕路251号",
    offerings=[
        DemoOffering(
            "companionship", ["燕子矶社区", "吉祥庵社区", "和燕社区"], _hours(WEEKDAYS, ("09:00", "17:00"))
        ),
    ],
)


async def _create(
    spec: DemoProvider,
    categories: dict[str, dict[str, int]],
    communities: dict[str, int],
    *,
    team: int | None = None,
    admin: int | None = None,
) -> int:
    provider = Provider(
        public_id=uuid.uuid4(),
        kind=spec.kind.value,
        name=spec.name,
        name_en=spec.name_en,
        description=spec.description,
        credit_code=spec.credit_code,
        contact_name=spec.contact_name,
        contact_phone=spec.contact_phone,
        address=spec.address,
        latitude=spec.latitude,
        longitude=spec.longitude,
        team=team,
        status=spec.status.value,
    )
    await provider.save()
    events = [
        ProviderEvent(provider=provider.id, action=Action.REGISTER.value, to_status=Status.PENDING.value)
    ]
    if spec.status is Status.VERIFIED:
        await Provider.update({Provider.verified_at: provider.created_at}).where(Provider.id == provider.id)
        documents = ["credit_code", "agreement"] if spec.kind.is_organization else ["identity_checked"]
        if spec.kind is Kind.VOLUNTEER_TEAM:
            documents = ["volunteer_registration", "agreement"]
        events.append(
            ProviderEvent(
                provider=provider.id,
                action=Action.VERIFY.value,
                from_status=Status.PENDING.value,
                to_status=Status.VERIFIED.value,
                documents=documents,
                by_user=admin,
            )
        )
    await ProviderEvent.insert(*events)
    for item in spec.offerings:
        category = categories.get(item.category)
        if category is None:  # the catalog's seed rows were removed (a test database): skip it
            continue
        offering = Offering(
            public_id=uuid.uuid4(),
            provider=provider.id,
            category=category["id"],
            key=f"{provider.id}:{category['id']}",
            title=item.title,
            unit=category["unit"],
            duration_minutes=item.duration_minutes,
            credit_cost=item.credit_cost if item.credit_cost is not None else category["credit_cost"],
            capacity=item.capacity,
        )
        await offering.save()
        await ServiceArea.insert(
            *[
                ServiceArea(
                    offering=offering.id,
                    community=communities[name],
                    category=category["id"],
                    key=f"{offering.id}:{communities[name]}",
                )
                for name in item.communities
            ]
        )
        await OpeningHours.insert(
            *[
                OpeningHours(offering=offering.id, weekday=d, opens_at=o, closes_at=c)
                for d, o, c in item.hours
            ]
        )
    if spec.workers:
        await Worker.insert(
            *[Worker(provider=provider.id, name=n, phone=p, job_title=j) for n, p, j in spec.workers]
        )
    return provider.id


async def seed(ctx: DemoContext) -> None:
    categories = {
        row["code"]: row
        for row in await Category.select(Category.id, Category.code, Category.unit, Category.credit_cost)
    }
    communities = {row["name"]: row["id"] for row in await Community.select(Community.id, Community.name)}
    admin = ctx.users.get(Role.ADMIN)
    created: dict[str, int] = {}
    for key, spec in (
        ("care_centre", CARE_CENTRE),
        ("social_work", SOCIAL_WORK),
        ("housekeeping", HOUSEKEEPING),
        ("volunteer_team", VOLUNTEER_TEAM),
        ("pending", PENDING),
    ):
        created[key] = await _create(spec, categories, communities, admin=admin)

    staff = ctx.users[Role.PROVIDER_STAFF]
    await accounts.link(staff, LinkKind.PROVIDER, created["care_centre"])
    await Worker.insert(
        Worker(
            provider=created["care_centre"],
            name="赵主任",
            phone="13800000003",
            job_title="中心主任",
            user=staff,
        )
    )

    volunteer = ctx.users[Role.VOLUNTEER]
    individual = DemoProvider(
        name="陈志愿",
        kind=Kind.INDIVIDUAL_VOLUNTEER,
        description="退休教师，周末为独居老人跑腿和陪伴聊天。",
        contact_name="陈志愿",
        contact_phone="13800000004",
        offerings=[
            DemoOffering(
                "errands", YAOHUA[:2], _hours((5, 6), ("09:00", "17:00")), capacity=2, duration_minutes=45
            ),
            DemoOffering("companionship", YAOHUA[:2], _hours((2, 5, 6), ("14:00", "17:00")), capacity=1),
        ],
    )
    created["volunteer"] = await _create(
        individual, categories, communities, team=created["volunteer_team"], admin=admin
    )
    await accounts.link(volunteer, LinkKind.PROVIDER, created["volunteer"])
    ctx.extra["providers"] = created
