"""A simulated district as plain values: streets, communities, households, providers, volunteers.

No database here: every function takes a seeded ``random.Random`` (or makes one from the seed
and a batch number), so the same seed gives the same district, batch by batch, without
holding a million households in memory.  The mix follows what a district's registry looks
like: about a third of the households on the minimum allowance (低保), a few percent destitute
(特困, mostly old people living alone), one in five elderly living alone, one in six with a
disabled member.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from households.idnumbers import check_character
from households.levels import HouseholdFacts, MemberFacts
from households.validation import HouseholdFields, MemberFields
from providers.rules import credit_code_check_char

DISTRICT_CODE = "S320113"
DISTRICT_NAME = "栖霞区（模拟）"
HOUSEHOLD_CODE = "SIM-{:07d}"
BATCH = 5_000
# Birth dates are counted back from a fixed day, so that a seed gives the same ID numbers any day.
REFERENCE_DAY = date(2026, 1, 1)

# street, its centre (latitude, longitude), its share of the district's communities
STREETS: tuple[tuple[str, float, float, int], ...] = (
    ("尧化街道", 32.1270, 118.8610, 16),
    ("马群街道", 32.0470, 118.8960, 12),
    ("迈皋桥街道", 32.1090, 118.8035, 15),
    ("燕子矶街道", 32.1430, 118.8120, 14),
    ("仙林街道", 32.1060, 118.9310, 16),
    ("栖霞街道", 32.1570, 118.9550, 10),
    ("龙潭街道", 32.1780, 119.0440, 15),
    ("八卦洲街道", 32.1900, 118.7950, 8),
    ("西岗街道", 32.0850, 119.0100, 14),
)
COMMUNITY_WORDS = (
    "东苑", "西苑", "南苑", "北苑", "新村", "花园", "家园", "新城", "佳园", "雅居", "景园", "翠苑",
    "锦园", "和园", "馨苑", "枫林", "桂苑", "春晖", "康居", "怡景", "泰和", "金陵", "长江", "紫金",
)  # fmt: skip
ROADS = (
    "和燕路",
    "尧新大道",
    "仙林大道",
    "马群街",
    "迈化路",
    "栖霞大道",
    "龙潭路",
    "学海路",
    "文苑路",
    "经天路",
)

CATEGORY_MIX = {
    "dibao": 34,
    "tekun": 7,
    "dibao_marginal": 20,
    "at_risk": 6,
    "expenditure_hardship": 10,
    "low_income_monitored": 23,
}
# Yearly household income in yuan, by category (low, high).
INCOME = {
    "dibao": (4_000, 12_000),
    "tekun": (0, 6_000),
    "dibao_marginal": (12_000, 24_000),
    "at_risk": (15_000, 30_000),
    "expenditure_hardship": (20_000, 45_000),
    "low_income_monitored": (18_000, 36_000),
}
# Where members were registered at birth: mostly Qixia, some other Nanjing districts, some migrants.
AREA_CODES: tuple[tuple[str, int], ...] = (
    ("320113", 70), ("320111", 8), ("320102", 5), ("320104", 5), ("320115", 4),
    ("342501", 3), ("341221", 3), ("321281", 2),
)  # fmt: skip
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN_MALE = "国建志军伟强明华德福平海东兵永文杰宝山庆春林生荣贵富辉祥刚勇成涛"
GIVEN_FEMALE = "秀英兰芳桂玉梅珍凤华红霞燕萍琴丽娟敏静淑翠云芬莲菊月玲婷"
ILLNESSES = ("尿毒症透析", "恶性肿瘤术后", "脑梗后遗症", "重症精神障碍", "白血病", "肝硬化", "帕金森病")
CHRONIC = ("高血压", "糖尿病", "冠心病", "慢阻肺", "关节炎", "行动不便")
ELDERLY_AGE = 65


@dataclass(frozen=True)
class CommunitySpec:
    code: str
    name: str
    street: int  # index into STREETS
    latitude: float
    longitude: float
    weight: int  # relative number of households


@dataclass(frozen=True)
class StreetSpec:
    code: str
    name: str
    latitude: float
    longitude: float


@dataclass
class Area:
    streets: list[StreetSpec]
    communities: list[CommunitySpec]

    def communities_of(self, street: int) -> list[int]:
        return [i for i, c in enumerate(self.communities) if c.street == street]


def area(seed: int) -> Area:
    """The district's nine streets and 120 communities, with a size weight for each community."""
    rng = random.Random(f"{seed}:area")
    streets: list[StreetSpec] = []
    communities: list[CommunitySpec] = []
    for s, (name, lat, lon, count) in enumerate(STREETS):
        code = f"{DISTRICT_CODE}{s + 1:03d}"
        streets.append(StreetSpec(code=code, name=name, latitude=lat, longitude=lon))
        short = name.removesuffix("街道")
        for c, word in enumerate(rng.sample(COMMUNITY_WORDS, count)):
            communities.append(
                CommunitySpec(
                    code=f"{code}{c + 1:03d}",
                    name=f"{short}{word}社区",
                    street=s,
                    latitude=round(lat + rng.uniform(-0.02, 0.02), 5),
                    longitude=round(lon + rng.uniform(-0.02, 0.02), 5),
                    weight=rng.randint(3, 12),
                )
            )
    return Area(streets=streets, communities=communities)


# -- people ----------------------------------------------------------------------------------------


class IdNumbers:
    """Issues unique, valid ID numbers: a sequence per (area, birth date, sex), like a register.

    Sequences start at 201 so that the demo district's numbers (sequences below 100) never
    clash with the simulation's in the same database.
    """

    FIRST = 100

    def __init__(self) -> None:
        self._next: dict[tuple[str, date, int], int] = {}

    def issue(self, area_code: str, born: date, male: bool) -> str:
        while True:
            key = (area_code, born, int(male))
            n = self._next.get(key, self.FIRST)
            if n < 500:
                self._next[key] = n + 1
                first17 = f"{area_code}{born:%Y%m%d}{2 * n + (1 if male else 2):03d}"
                return first17 + check_character(first17)
            born += timedelta(days=1)  # this day's numbers are used up: the next day's


def _weighted(rng: random.Random, pairs: Sequence[tuple[str, int]]) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _cumulative(weights: Sequence[int]) -> list[int]:
    return list(itertools.accumulate(weights))


# rng.choices with cumulative weights worked out once: a million households call them often.
_CATEGORIES, _CATEGORY_CUM = list(CATEGORY_MIX), _cumulative(list(CATEGORY_MIX.values()))
_AREAS, _AREA_CUM = [a for a, _ in AREA_CODES], _cumulative([w for _, w in AREA_CODES])
_GRADES, _GRADE_CUM = (1, 2, 3, 4), _cumulative((15, 25, 30, 30))
_STATUSES, _STATUS_CUM = ("active", "suspended", "exited", "candidate"), _cumulative((960, 15, 20, 5))


def person_name(rng: random.Random, male: bool) -> str:
    given = GIVEN_MALE if male else GIVEN_FEMALE
    return rng.choice(SURNAMES) + "".join(rng.choice(given) for _ in range(rng.choice((1, 2, 2, 2))))


def mobile(rng: random.Random) -> str:
    return f"1{rng.choice('35789')}{rng.randrange(10**9):09d}"


@dataclass(frozen=True)
class PersonSpec:
    age: int
    male: bool
    relation: str


@dataclass
class HouseholdSpec:
    """One household as the registry would hold it, with its members' plain fields."""

    code: str
    community: int  # index into Area.communities
    fields: HouseholdFields
    members: list[MemberFields]
    yearly_income: int

    def facts(self) -> HouseholdFacts:
        return HouseholdFacts(
            category=self.fields.category,
            groups=frozenset(self.fields.groups),
            members=tuple(
                MemberFacts(m.birth_date, m.disability_grade, m.can_use_phone) for m in self.members
            ),
        )


def _composition(rng: random.Random, category: str) -> tuple[list[PersonSpec], set[str]]:
    """Who lives in the household, and the need groups that follow from it."""
    alone = 0.6 if category == "tekun" else 0.22
    roll = rng.random()
    if roll < alone:
        return [PersonSpec(rng.randint(ELDERLY_AGE, 97), rng.random() < 0.4, "head")], {"elderly_alone"}
    if roll < alone + 0.12:
        age = rng.randint(60, 88)
        return [PersonSpec(age, True, "head"), PersonSpec(age + rng.randint(-5, 3), False, "spouse")], set()
    if roll < alone + 0.20:
        parent = PersonSpec(rng.randint(26, 52), rng.random() < 0.25, "head")
        kids = [PersonSpec(rng.randint(2, 17), rng.random() < 0.5, "child") for _ in range(rng.randint(1, 2))]
        return [parent, *kids], {"single_parent"}
    if roll < alone + 0.32:
        return [PersonSpec(rng.randint(22, 64), rng.random() < 0.55, "head")], set()
    head = PersonSpec(rng.randint(30, 62), rng.random() < 0.6, "head")
    people = [head, PersonSpec(head.age + rng.randint(-6, 4), not head.male, "spouse")]
    people += [PersonSpec(rng.randint(1, 24), rng.random() < 0.5, "child") for _ in range(rng.randint(0, 2))]
    if rng.random() < 0.25:
        people.append(PersonSpec(rng.randint(head.age + 22, 96), rng.random() < 0.4, "parent"))
    return people, set()


def _can_use_phone(rng: random.Random, age: int) -> bool:
    if age < 12:
        return False
    chance = 0.15 if age >= 75 else 0.5 if age >= 60 else 0.92 if age >= 18 else 0.7
    return rng.random() < chance


def household(rng: random.Random, n: int, community: int, ids: IdNumbers) -> HouseholdSpec:
    """Household number ``n`` of the district."""
    category = rng.choices(_CATEGORIES, cum_weights=_CATEGORY_CUM)[0]
    people, groups = _composition(rng, category)
    disabled = rng.randrange(len(people)) if rng.random() < 0.17 else None
    ill = rng.randrange(len(people)) if rng.random() < 0.12 else None
    if disabled is not None:
        groups.add("disabled")
    if ill is not None:
        groups.add("serious_illness")
    if any(p.age < 18 for p in people) and rng.random() < 0.12:
        groups.add("child_in_difficulty")
    members: list[MemberFields] = []
    for i, person in enumerate(people):
        born = REFERENCE_DAY - timedelta(days=365 * person.age + rng.randrange(365))
        can_phone = _can_use_phone(rng, person.age)
        health = ""
        if i == ill:
            health = rng.choice(ILLNESSES)
        elif person.age >= 55 and rng.random() < 0.35:
            health = rng.choice(CHRONIC)
        members.append(
            MemberFields(
                name=person_name(rng, person.male),
                id_number=ids.issue(rng.choices(_AREAS, cum_weights=_AREA_CUM)[0], born, person.male),
                birth_date=born,
                sex="male" if person.male else "female",
                relation=person.relation,
                phone=mobile(rng) if can_phone and person.age >= 16 else "",
                disability_grade=rng.choices((1, 2, 3, 4), weights=(15, 25, 30, 30))[0]
                if i == disabled
                else None,
                health=health,
                can_use_phone=can_phone,
            )
        )
    phones = [m.phone for m in members if m.phone]
    phone = phones[0] if phones else f"025-8{rng.randrange(10**7):07d}"
    code = HOUSEHOLD_CODE.format(n)
    low, high = INCOME[category]
    fields = HouseholdFields(
        code=code,
        community_id=0,  # the database id is known only when writing
        address="",  # set with the place, by households()
        phone=phone,
        category=category,
        groups=sorted(groups),
        status=rng.choices(_STATUSES, cum_weights=_STATUS_CUM)[0],
        latitude=None,
        longitude=None,
    )
    return HouseholdSpec(
        code=code,
        community=community,
        fields=fields,
        members=members,
        yearly_income=rng.randint(low, high),
    )


def households(seed: int, district: Area, start: int, count: int, ids: IdNumbers) -> list[HouseholdSpec]:
    """Households ``start`` … ``start + count - 1`` (numbered from 1), placed in communities by weight.

    Call it batch after batch in order with the same ``ids``: the batch's random numbers come
    from the seed and the batch's start, the ID sequences from what earlier batches issued.
    """
    rng = random.Random(f"{seed}:households:{start}")
    weights = [c.weight for c in district.communities]
    places = rng.choices(range(len(district.communities)), weights=weights, k=count)
    out: list[HouseholdSpec] = []
    for offset, place in enumerate(places):
        spec = household(rng, start + offset, place, ids)
        community = district.communities[place]
        street = district.streets[community.street]
        spec.fields.address = (
            f"南京市栖霞区{street.name}{community.name.removesuffix('社区')}"
            f"{rng.choice(ROADS)}{rng.randint(1, 399)}号{rng.randint(1, 30)}栋{rng.randint(1, 6)}单元"
            f"{rng.randint(1, 18)}{rng.randint(1, 4):02d}室"
        )
        spec.fields.latitude = round(community.latitude + rng.uniform(-0.004, 0.004), 6)
        spec.fields.longitude = round(community.longitude + rng.uniform(-0.004, 0.004), 6)
        out.append(spec)
    return out


# -- providers and volunteers -------------------------------------------------------------------------

PROVIDER_KINDS: tuple[tuple[str, int], ...] = (
    ("social_organization", 35),
    ("social_work_agency", 15),
    ("company", 30),
    ("volunteer_team", 20),
)
# What each kind of provider tends to offer, most likely first.
KIND_CATEGORIES: dict[str, tuple[str, ...]] = {
    "social_organization": ("meals", "companionship", "cleaning", "bathing", "errands", "medicine"),
    "social_work_agency": ("hospital_escort", "companionship", "errands", "medicine"),
    "company": ("cleaning", "home_repair", "haircut", "bathing", "meals"),
    "volunteer_team": ("errands", "companionship", "medicine", "haircut"),
    "individual_volunteer": ("errands", "companionship", "medicine"),
}
NAME_WORDS = (
    "阳光", "康乐", "福寿", "安心", "暖心", "邻里", "同心", "惠民", "和美", "乐龄", "颐康", "松鹤",
    "德善", "益家", "善邻", "春风", "夕阳红", "金色年华", "爱心", "一家亲", "幸福里", "众帮", "悦享", "久久",
)  # fmt: skip
NAME_SUFFIX = {
    "social_organization": ("居家养老服务中心", "助老服务社", "邻里互助会", "养老服务站"),
    "social_work_agency": ("社会工作服务中心", "社工事务所"),
    "company": ("家政服务有限公司", "物业服务有限公司", "便民维修服务部", "健康管理有限公司"),
    "volunteer_team": ("志愿服务队", "青年志愿者协会", "爱心志愿服务队"),
}
# Per category: (capacity low, high), duration in minutes, weekly hours as (weekdays, periods).
EVERY_DAY = (0, 1, 2, 3, 4, 5, 6)
WEEKDAYS = (0, 1, 2, 3, 4)
Hours = tuple[tuple[tuple[int, ...], tuple[tuple[int, int], ...]], ...]
OFFERING_SHAPES: dict[str, tuple[tuple[int, int], int, Hours]] = {
    "meals": ((10, 40), 30, ((EVERY_DAY, ((630, 780), (990, 1110))),)),
    "cleaning": ((2, 8), 120, ((WEEKDAYS, ((480, 720), (810, 1050))), (EVERY_DAY, ((480, 1080),)))),
    "medicine": ((3, 10), 60, ((EVERY_DAY, ((480, 1260),)), (WEEKDAYS, ((540, 1080),)))),
    "errands": ((3, 12), 45, ((EVERY_DAY, ((480, 1200),)), (WEEKDAYS, ((540, 1080),)))),
    "companionship": ((2, 8), 60, ((EVERY_DAY, ((540, 1020),)), (WEEKDAYS, ((540, 690), (840, 1050))))),
    "hospital_escort": ((2, 6), 240, ((WEEKDAYS, ((420, 1020),)), (EVERY_DAY, ((420, 960),)))),
    "haircut": ((1, 4), 40, (((5, 6), ((540, 1020),)), ((1, 3, 5), ((540, 960),)))),
    "home_repair": ((2, 6), 60, ((EVERY_DAY, ((480, 1200),)), (WEEKDAYS, ((480, 1080),)))),
    "bathing": ((1, 3), 90, (((1, 3, 5), ((540, 960),)), (WEEKDAYS, ((540, 1020),)))),
}  # fmt: skip
VOLUNTEER_HOURS = (
    ((5, 6), ((540, 1020),)),  # weekends
    (WEEKDAYS, ((1080, 1260),)),  # weekday evenings
    (WEEKDAYS, ((540, 690), (840, 1020))),  # retired: weekday days
)


@dataclass
class OfferingSpec:
    category: str
    communities: list[int]  # indexes into Area.communities
    hours: list[tuple[int, int, int]]  # (weekday, opens, closes)
    capacity: int
    duration_minutes: int


@dataclass
class ProviderSpec:
    """An organization or an individual volunteer, verified, with its offerings."""

    public_id: uuid.UUID
    kind: str
    name: str
    street: int
    latitude: float
    longitude: float
    credit_code: str = ""
    contact_name: str = ""
    contact_phone: str = ""
    address: str = ""
    team: int | None = None  # index of the volunteer team among the organizations
    offerings: list[OfferingSpec] = field(default_factory=list)


def _hours(rng: random.Random, shapes: Sequence[Any]) -> list[tuple[int, int, int]]:
    days, periods = rng.choice(shapes)
    return [(d, opens, closes) for d in days for opens, closes in periods]


def _offering(
    rng: random.Random, category: str, communities: list[int], *, volunteer: bool = False
) -> OfferingSpec:
    (low, high), minutes, shapes = OFFERING_SHAPES.get(category, OFFERING_SHAPES["errands"])
    return OfferingSpec(
        category=category,
        communities=sorted(communities),
        hours=_hours(rng, VOLUNTEER_HOURS if volunteer else shapes),
        capacity=rng.randint(1, 2) if volunteer else rng.randint(low, high),
        duration_minutes=minutes,
    )


def _street_weights(district: Area) -> list[int]:
    return [
        sum(district.communities[i].weight for i in district.communities_of(s))
        for s in range(len(district.streets))
    ]


def organizations(seed: int, district: Area, count: int, categories: Sequence[str]) -> list[ProviderSpec]:
    """``count`` verified organizations, each serving part of its street (and sometimes the next)."""
    rng = random.Random(f"{seed}:providers")
    known = set(categories)
    weights = _street_weights(district)
    names: Counter[str] = Counter()
    out: list[ProviderSpec] = []
    for n in range(count):
        kind = _weighted(rng, PROVIDER_KINDS)
        street = rng.choices(range(len(district.streets)), weights=weights)[0]
        centre = district.streets[street]
        short = centre.name.removesuffix("街道")
        name = f"南京市栖霞区{short}{rng.choice(NAME_WORDS)}{rng.choice(NAME_SUFFIX[kind])}"
        names[name] += 1
        if names[name] > 1:  # the same name in the same street: a numbered branch
            name = f"{name}（{names[name]}）"
        spec = ProviderSpec(
            public_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            kind=kind,
            name=name,
            street=street,
            latitude=round(centre.latitude + rng.uniform(-0.02, 0.02), 6),
            longitude=round(centre.longitude + rng.uniform(-0.02, 0.02), 6),
            contact_name=person_name(rng, rng.random() < 0.5),
            contact_phone=mobile(rng),
            address=f"南京市栖霞区{centre.name}{rng.choice(ROADS)}{rng.randint(1, 500)}号",
        )
        if kind != "volunteer_team":
            prefix = "91320113MA" if kind == "company" else "52320113MJ"
            first17 = f"{prefix}{n + 1:07d}"
            spec.credit_code = first17 + credit_code_check_char(first17)
        home = district.communities_of(street)
        wanted = [c for c in KIND_CATEGORIES[kind] if c in known]
        for category in wanted[: rng.randint(2, 4)] if len(wanted) > 1 else wanted:
            served = rng.sample(home, max(1, round(len(home) * rng.uniform(0.4, 1.0))))
            if rng.random() < 0.2:  # a neighbouring street too
                other = district.communities_of((street + rng.choice((-1, 1))) % len(district.streets))
                served += rng.sample(other, max(1, len(other) // 3))
            spec.offerings.append(_offering(rng, category, served))
        out.append(spec)
    return out


def volunteers(
    seed: int, district: Area, count: int, teams: Sequence[ProviderSpec], categories: Sequence[str]
) -> list[ProviderSpec]:
    """Individual volunteers near home, most of them with a volunteer team of their street."""
    rng = random.Random(f"{seed}:volunteers")
    known = [c for c in KIND_CATEGORIES["individual_volunteer"] if c in set(categories)]
    weights = _street_weights(district)
    by_street: dict[int, list[int]] = {}
    for i, team in enumerate(teams):
        if team.kind == "volunteer_team":
            by_street.setdefault(team.street, []).append(i)
    out: list[ProviderSpec] = []
    for _ in range(count):
        street = rng.choices(range(len(district.streets)), weights=weights)[0]
        home = district.communities_of(street)
        own = rng.choice(home)
        male = rng.random() < 0.45
        place = district.communities[own]
        local_teams = by_street.get(street, [])
        spec = ProviderSpec(
            public_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            kind="individual_volunteer",
            name=person_name(rng, male),
            street=street,
            latitude=round(place.latitude + rng.uniform(-0.005, 0.005), 6),
            longitude=round(place.longitude + rng.uniform(-0.005, 0.005), 6),
            contact_phone="",  # the volunteer's account phone, set when writing
            team=rng.choice(local_teams) if local_teams and rng.random() < 0.8 else None,
        )
        spec.contact_name = spec.name
        served = [own, *rng.sample(home, min(len(home), rng.randint(0, 2)))]
        for category in rng.sample(known, min(len(known), rng.randint(1, 2))):
            spec.offerings.append(_offering(rng, category, sorted(set(served)), volunteer=True))
        out.append(spec)
    return out
