"""Write a simulated district into the database with bulk inserts, batch by batch.

Households go in as the import writes them (``households.importer``): the same encrypted
member columns, the level computed by the rules in force with its explanation, and the first
two history rows.  Level changes are not announced: a generated district starts as if its
registry had always been there, and nothing should queue 50,000 messages about it.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from households import levels, services
from households.levels import RuleSet
from households.tables import Community, District, Household, HouseholdEvent, Member, Street
from marketplace import clock, db
from marketplace.auth import LinkKind, Role
from marketplace.simulation import district
from marketplace.simulation.district import Area, HouseholdSpec, IdNumbers, ProviderSpec
from marketplace.tables import Category, User, UserLink
from providers.rules import Action, Status
from providers.tables import Offering, OpeningHours, Provider, ProviderEvent, ServiceArea

LOOKUP_BATCH = 1000
PROVIDER_BATCH = 1000
STEWARD_PHONE = "199{:08d}"
SUPERVISOR_PHONE = "198{:08d}"
VOLUNTEER_PHONE = "166{:08d}"

Progress = Callable[[int], None]


class AlreadyGenerated(Exception):
    """The database holds a simulated district already; generate into a fresh database."""


@dataclass(frozen=True)
class Sizes:
    """How big a district to generate (the defaults are the issue's: one real district)."""

    households: int = 50_000
    providers: int = 400
    volunteers: int = 2_000

    @property
    def units(self) -> int:
        """Steps of the progress bar: one per household, provider and volunteer."""
        return self.households + self.providers + self.volunteers


@dataclass
class Summary:
    """What was generated, to print."""

    seed: int
    streets: int = 0
    communities: int = 0
    stewards: int = 0
    supervisors: int = 0
    households: int = 0
    members: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    levels: Counter[int] = field(default_factory=Counter)
    groups: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    providers: Counter[str] = field(default_factory=Counter)
    volunteers: int = 0
    volunteers_in_teams: int = 0
    offerings: int = 0
    service_areas: int = 0
    opening_hours: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


async def generate(sizes: Sizes, seed: int, progress: Progress | None = None) -> Summary:
    """Generate the district for ``seed``; raises :class:`AlreadyGenerated` if one is there."""
    if await District.exists().where(District.code == district.DISTRICT_CODE):
        raise AlreadyGenerated(district.DISTRICT_CODE)
    step = progress or (lambda _n: None)
    summary = Summary(seed=seed)
    now = clock.now()
    began = time.perf_counter()
    area = district.area(seed)
    async with db.atomic():
        community_ids = await _write_area(area, summary)
        stewards = await _write_stewards(area, community_ids, summary)
    summary.seconds["area"] = time.perf_counter() - began

    began = time.perf_counter()
    rules = await services.current_rules()
    today = clock.local_now().date()
    ids = IdNumbers()
    for start in range(1, sizes.households + 1, district.BATCH):
        count = min(district.BATCH, sizes.households - start + 1)
        batch = district.households(seed, area, start, count, ids)
        async with db.atomic():
            await _write_households(
                batch,
                community_ids=community_ids,
                stewards=stewards,
                rules=rules,
                today=today,
                now=now,
                seed=seed,
                summary=summary,
            )
        step(count)
    summary.seconds["households"] = time.perf_counter() - began

    began = time.perf_counter()
    categories = {
        row["code"]: row
        for row in await Category.select(
            Category.id, Category.code, Category.unit, Category.credit_cost
        ).where(
            Category.is_active == True  # noqa: E712 (a Piccolo condition, not a comparison)
        )
    }
    organizations = district.organizations(seed, area, sizes.providers, list(categories))
    organization_ids = await _write_providers(
        organizations,
        team_ids=[],
        community_ids=community_ids,
        categories=categories,
        now=now,
        summary=summary,
        step=step,
    )
    volunteers = district.volunteers(seed, area, sizes.volunteers, organizations, list(categories))
    await _write_providers(
        volunteers,
        team_ids=organization_ids,
        community_ids=community_ids,
        categories=categories,
        now=now,
        summary=summary,
        step=step,
    )
    summary.seconds["providers"] = time.perf_counter() - began

    if db.is_postgres():
        began = time.perf_counter()
        # Fresh statistics, so that the first queries plan for the rows just loaded, and the
        # search indexes' pending entries merged, as autovacuum would do some time later.
        await db.engine().run_ddl("VACUUM ANALYZE")
        summary.seconds["vacuum"] = time.perf_counter() - began
    return summary


# -- areas and stewards ------------------------------------------------------------------------------


async def _write_area(area: Area, summary: Summary) -> list[int]:
    """The district, its streets and communities; returns community ids in the area's order."""
    await District.insert(District(code=district.DISTRICT_CODE, name=district.DISTRICT_NAME))
    district_id = (await _ids(District, District.code, [district.DISTRICT_CODE]))[district.DISTRICT_CODE]
    await db.bulk_insert(
        Street, [{"district": district_id, "code": s.code, "name": s.name} for s in area.streets]
    )
    street_ids = await _ids(Street, Street.code, [s.code for s in area.streets])
    await db.bulk_insert(
        Community,
        [
            {"street": street_ids[area.streets[c.street].code], "code": c.code, "name": c.name}
            for c in area.communities
        ],
    )
    by_code = await _ids(Community, Community.code, [c.code for c in area.communities])
    summary.streets, summary.communities = len(area.streets), len(area.communities)
    return [by_code[c.code] for c in area.communities]


async def _write_stewards(area: Area, community_ids: list[int], summary: Summary) -> list[int]:
    """A steward per community (its duty steward too) and a supervisor per street office.

    Their accounts have no password: an administrator sets one for whoever is to log in.
    Returns the community stewards' user ids in the area's order.
    """
    rng_names = random.Random(f"{summary.seed}:stewards")
    users = [
        {
            "phone": STEWARD_PHONE.format(i + 1),
            "display_name": f"{c.name}救助小管家 {district.person_name(rng_names, male=False)}",
            "role": Role.STEWARD.value,
        }
        for i, c in enumerate(area.communities)
    ]
    users += [
        {
            "phone": SUPERVISOR_PHONE.format(s + 1),
            "display_name": f"{street.name}救助督导 {district.person_name(rng_names, male=True)}",
            "role": Role.STEWARD.value,
        }
        for s, street in enumerate(area.streets)
    ]
    await db.bulk_insert(User, users)
    user_ids = await _ids(User, User.phone, [u["phone"] for u in users])
    stewards = [user_ids[STEWARD_PHONE.format(i + 1)] for i in range(len(area.communities))]
    links = [_link(stewards[i], LinkKind.COMMUNITY, community_ids[i]) for i in range(len(area.communities))]
    for s, street in enumerate(area.streets):
        supervisor = user_ids[SUPERVISOR_PHONE.format(s + 1)]
        links += [_link(supervisor, LinkKind.COMMUNITY, community_ids[i]) for i in area.communities_of(s)]
        await Street.update({Street.supervisor: supervisor}).where(Street.code == street.code)
    await db.bulk_insert(UserLink, links)
    for steward, community in zip(stewards, community_ids, strict=True):
        await Community.update({Community.duty_steward: steward}).where(Community.id == community)
    summary.stewards, summary.supervisors = len(stewards), len(area.streets)
    return stewards


def _link(user_id: int, kind: LinkKind, target: int) -> dict[str, Any]:
    return {
        "user": user_id,
        "kind": kind.value,
        "target": str(target),
        "key": f"{user_id}:{kind.value}:{target}",
    }


async def _ids(table: Any, column: Any, values: Sequence[Any]) -> dict[Any, int]:
    """Ids of rows just bulk-inserted, by a unique column."""
    found: dict[Any, int] = {}
    name = column._meta.name
    for start in range(0, len(values), LOOKUP_BATCH):
        rows = await table.select(table.id, column).where(
            column.is_in(list(values[start : start + LOOKUP_BATCH]))
        )
        found.update({row[name]: row["id"] for row in rows})
    return found


# -- households ------------------------------------------------------------------------------------


async def _write_households(
    batch: list[HouseholdSpec],
    *,
    community_ids: list[int],
    stewards: list[int],
    rules: RuleSet,
    today: date,
    now: datetime,
    seed: int,
    summary: Summary,
) -> None:
    assessments = [levels.assess(spec.facts(), rules, today) for spec in batch]
    records = []
    for spec, assessment in zip(batch, assessments, strict=True):
        spec.fields.community_id = community_ids[spec.community]
        values = {
            column._meta.name: value for column, value in services._household_values(spec.fields).items()
        }
        records.append(
            {
                **values,
                "yearly_income": spec.yearly_income,
                "steward": stewards[spec.community],
                "level": assessment.level,
                "computed_level": assessment.level,
                "level_points": assessment.points,
                "level_explanation": assessment.explanation(),
                "created_at": now,
                "updated_at": now,
            }
        )
    await db.bulk_insert(Household, records)
    # The codes of a batch are consecutive: one range read finds their ids.
    rows = await Household.select(Household.id, Household.code).where(
        (Household.code >= batch[0].code) & (Household.code <= batch[-1].code)
    )
    ids = {row["code"]: row["id"] for row in rows}
    members: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    source = {"simulation": seed}
    for spec, assessment in zip(batch, assessments, strict=True):
        household_id = ids[spec.code]
        for fields in spec.members:
            encrypted = {
                column._meta.name: value for column, value in services._encrypt_member(fields).items()
            }
            members.append({**encrypted, "household": household_id, "created_at": now, "updated_at": now})
        events.append(
            {
                "household": household_id,
                "at": now,
                "kind": "created",
                "to_value": spec.fields.status,
                "detail": source,
            }
        )
        explained = {
            "explanation": assessment.explanation(),
            "effective_from": None,
            "effective_to": assessment.level,
        }
        events.append(
            {
                "household": household_id,
                "at": now,
                "kind": "level_computed",
                "to_value": str(assessment.level),
                "detail": explained,
            }
        )
        summary.categories[spec.fields.category] += 1
        summary.levels[assessment.level] += 1
        summary.groups.update(spec.fields.groups)
        summary.statuses[spec.fields.status] += 1
    await db.bulk_insert(Member, members)
    await db.bulk_insert(HouseholdEvent, events)
    summary.households += len(batch)
    summary.members += len(members)


# -- providers and volunteers --------------------------------------------------------------------------


async def _write_providers(
    specs: list[ProviderSpec],
    *,
    team_ids: list[int],
    community_ids: list[int],
    categories: dict[str, dict[str, Any]],
    now: datetime,
    summary: Summary,
    step: Progress,
) -> list[int]:
    """Verified providers with their history, offerings, service areas and hours; returns their ids.

    Individual volunteers also get an account (without a password) that acts for them.
    """
    provider_ids: list[int] = []
    for start in range(0, len(specs), PROVIDER_BATCH):
        batch = specs[start : start + PROVIDER_BATCH]
        async with db.atomic():
            provider_ids += await _write_provider_batch(
                batch,
                start=start,
                team_ids=team_ids,
                community_ids=community_ids,
                categories=categories,
                now=now,
                summary=summary,
            )
        step(len(batch))
    return provider_ids


async def _write_provider_batch(
    batch: list[ProviderSpec],
    *,
    start: int,
    team_ids: list[int],
    community_ids: list[int],
    categories: dict[str, dict[str, Any]],
    now: datetime,
    summary: Summary,
) -> list[int]:
    volunteer_users: dict[int, int] = {}
    if batch and batch[0].kind == "individual_volunteer":
        phones = [VOLUNTEER_PHONE.format(start + i + 1) for i in range(len(batch))]
        await db.bulk_insert(
            User,
            [
                {"phone": phone, "display_name": f"志愿者 {spec.name}", "role": Role.VOLUNTEER.value}
                for phone, spec in zip(phones, batch, strict=True)
            ],
        )
        users = await _ids(User, User.phone, phones)
        for i, (phone, spec) in enumerate(zip(phones, batch, strict=True)):
            spec.contact_phone = phone
            volunteer_users[i] = users[phone]
    await db.bulk_insert(Provider, [_provider_record(spec, team_ids, now) for spec in batch])
    found = await _ids(Provider, Provider.public_id, [spec.public_id for spec in batch])
    ids = [found[spec.public_id] for spec in batch]
    await db.bulk_insert(
        ProviderEvent, [e for spec, pid in zip(batch, ids, strict=True) for e in _history(spec, pid, now)]
    )
    if volunteer_users:
        await db.bulk_insert(
            UserLink, [_link(volunteer_users[i], LinkKind.PROVIDER, pid) for i, pid in enumerate(ids)]
        )
        summary.volunteers += len(batch)
        summary.volunteers_in_teams += sum(1 for spec in batch if spec.team is not None)
    summary.providers.update(spec.kind for spec in batch)

    offerings: list[dict[str, Any]] = []
    shapes: dict[str, tuple[Any, Any]] = {}
    for spec, pid in zip(batch, ids, strict=True):
        for item in spec.offerings:
            category = categories[item.category]
            key = f"{pid}:{category['id']}"
            shapes[key] = (item, category["id"])
            offerings.append(
                {
                    "public_id": uuid.uuid5(spec.public_id, item.category),
                    "provider": pid,
                    "category": category["id"],
                    "key": key,
                    "unit": category["unit"],
                    "duration_minutes": item.duration_minutes,
                    "credit_cost": category["credit_cost"],
                    "capacity": item.capacity,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    await db.bulk_insert(Offering, offerings)
    offering_ids = await _ids(Offering, Offering.key, list(shapes))
    areas: list[dict[str, Any]] = []
    hours: list[dict[str, Any]] = []
    for key, (item, category_id) in shapes.items():
        oid = offering_ids[key]
        for index in item.communities:
            community = community_ids[index]
            areas.append(
                {
                    "offering": oid,
                    "community": community,
                    "category": category_id,
                    "key": f"{oid}:{community}",
                }
            )
        hours += [{"offering": oid, "weekday": d, "opens_at": o, "closes_at": c} for d, o, c in item.hours]
    await db.bulk_insert(ServiceArea, areas)
    await db.bulk_insert(OpeningHours, hours)
    summary.offerings += len(offerings)
    summary.service_areas += len(areas)
    summary.opening_hours += len(hours)
    return ids


def _provider_record(spec: ProviderSpec, team_ids: list[int], now: datetime) -> dict[str, Any]:
    return {
        "public_id": spec.public_id,
        "kind": spec.kind,
        "name": spec.name,
        "credit_code": spec.credit_code,
        "contact_name": spec.contact_name,
        "contact_phone": spec.contact_phone,
        "address": spec.address,
        "latitude": spec.latitude,
        "longitude": spec.longitude,
        "team": team_ids[spec.team] if spec.team is not None else None,
        "status": Status.VERIFIED.value,
        "is_active": True,
        "verified_at": now,
        "created_at": now,
        "updated_at": now,
    }


def _history(spec: ProviderSpec, provider_id: int, now: datetime) -> Iterable[dict[str, Any]]:
    """Registered, then verified on the papers its kind has (as ``providers.demo`` records them)."""
    if spec.kind == "volunteer_team":
        documents = ["volunteer_registration", "agreement"]
    elif spec.kind == "individual_volunteer":
        documents = ["identity_checked"]
    else:
        documents = ["credit_code", "agreement"]
    yield {
        "provider": provider_id,
        "action": Action.REGISTER.value,
        "to_status": Status.PENDING.value,
        "at": now,
    }
    yield {
        "provider": provider_id,
        "action": Action.VERIFY.value,
        "from_status": Status.PENDING.value,
        "to_status": Status.VERIFIED.value,
        "documents": documents,
        "at": now,
    }
