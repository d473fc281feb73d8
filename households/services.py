"""What people do with households: one async function per action, each checking who may do it.

Stewards reach the households of the communities linked to them, administrators all of them,
a resident their own household; anything else answers NotFound, so that nobody learns what
exists beyond their reach.  ID numbers and health notes are encrypted here and decrypted
only for the export and for a steward of the community who gives a reason (both audited).
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from piccolo.columns.combination import WhereRaw

from households import idnumbers, levels
from households.levels import BUILTIN_GROUPS, CATEGORIES, Assessment, HouseholdFacts, MemberFacts, RuleSet
from households.tables import (
    Community,
    Consent,
    Household,
    HouseholdEvent,
    LevelRuleSet,
    Member,
    NeedGroup,
)
from households.validation import (
    CONSENT_METHODS,
    HouseholdFields,
    MemberFields,
    household_fields,
    member_fields,
    parse_date,
    yearly_income,
)
from marketplace import accounts, audit, clock, crypto, db, outbox
from marketplace.auth import LinkKind, Principal, Role
from marketplace.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed
from marketplace.i18n import N_, current_locale, gettext
from marketplace.pagination import Page, paginate
from marketplace.tables import User

log = logging.getLogger("cloudmarket.households")

ID_CONTEXT = "member.id_number"
HEALTH_CONTEXT = "member.health"
LEVEL_KINDS = ("level_computed", "level_override", "override_ended")
SORTS = {
    "level": (Household.level, True),
    "code": (Household.code, True),
    "updated": (Household.updated_at, False),
    "community": (Household.community, True),
}
EVENT_LABELS = {
    "created": N_("Registered"),
    "updated": N_("Details changed"),
    "status_changed": N_("Status changed"),
    "level_computed": N_("Level computed by the rules"),
    "level_override": N_("Level set by hand"),
    "override_ended": N_("Level set by hand ended"),
    "member_added": N_("Member added"),
    "member_updated": N_("Member changed"),
    "member_removed": N_("Member removed"),
    "consent_recorded": N_("Consent recorded"),
    "proxy_linked": N_("Family account linked"),
    "proxy_unlinked": N_("Family account unlinked"),
    "account_activated": N_("Resident account activated"),
    "erased": N_("Personal data erased"),
}
MAX_OVERRIDE_DAYS = 366
MIN_REASON = 4


# -- who may see what --------------------------------------------------------------------------


def is_admin(p: Principal) -> bool:
    return p.role == Role.ADMIN and p.client_id is None


def community_scope(p: Principal) -> set[int] | None:
    """The communities a staff caller reaches (None: all of them); others reach none."""
    if is_admin(p):
        return None
    if p.role in (Role.STEWARD, Role.ADMIN):
        return {int(ref) for ref in p.linked(LinkKind.COMMUNITY) if ref.isdigit()}
    raise NotFound()


def in_scope(p: Principal, community_id: int) -> bool:
    scope = community_scope(p)
    return scope is None or community_id in scope


async def _household_row(household_id: int) -> dict[str, Any]:
    row = await Household.select().where(Household.id == household_id).first()
    if row is None:
        raise NotFound()
    return row


async def staff_household(p: Principal, household_id: int) -> dict[str, Any]:
    """The household if a steward of its community or an admin asks; NotFound otherwise."""
    if p.role not in (Role.STEWARD, Role.ADMIN):
        raise NotFound()
    row = await _household_row(household_id)
    if not in_scope(p, row["community"]):
        raise NotFound()
    return row


async def visible_household(p: Principal, household_id: int) -> dict[str, Any]:
    """Staff in scope, or a resident linked to this household."""
    if p.role == Role.RESIDENT:
        if not p.is_linked(LinkKind.HOUSEHOLD, household_id):
            raise NotFound()
        return await _household_row(household_id)
    return await staff_household(p, household_id)


def _writable(row: dict[str, Any]) -> None:
    if row["erased_at"] is not None:
        raise Conflict(N_("This household's personal data was erased; it can no longer be changed."))


async def communities_for(p: Principal) -> list[dict[str, Any]]:
    """The communities a staff caller may file households under, with their street."""
    scope = community_scope(p)
    query = Community.select(
        Community.id, Community.code, Community.name, Community.street.name.as_alias("street_name")
    ).order_by(Community.code)
    if scope is not None:
        if not scope:
            return []
        query = query.where(Community.id.is_in(sorted(scope)))
    return await query


# -- need groups and rules -----------------------------------------------------------------------


@dataclass(frozen=True)
class GroupOption:
    code: str
    label: str
    builtin: bool


async def need_groups() -> list[GroupOption]:
    """Every need group, built in or added, labelled in the reader's language."""
    options = [GroupOption(code, gettext(label), True) for code, label in BUILTIN_GROUPS.items()]
    zh = current_locale.get().startswith("zh")
    for row in await NeedGroup.select().order_by(NeedGroup.code):
        options.append(GroupOption(row["code"], row["name_zh"] if zh else row["name_en"], False))
    return options


async def known_group_codes() -> set[str]:
    rows = await NeedGroup.select(NeedGroup.code)
    return set(BUILTIN_GROUPS) | {row["code"] for row in rows}


async def add_need_group(p: Principal, *, code: str, name_zh: str, name_en: str) -> None:
    """An administrator adds a need group; its code is what files and rules use."""
    if not is_admin(p):
        raise PermissionDenied()
    code = code.strip().lower()
    errors: list[FieldError] = []
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,39}", code):
        errors.append(FieldError("code", N_("Use 2 to 40 lower-case letters, digits and underscores.")))
    elif code in await known_group_codes():
        errors.append(FieldError("code", N_("A need group with this code exists already.")))
    if not name_zh.strip():
        errors.append(FieldError("name_zh", N_("Enter the Chinese name.")))
    if not name_en.strip():
        errors.append(FieldError("name_en", N_("Enter the English name.")))
    if errors:
        raise ValidationFailed(errors=errors)
    async with db.atomic():
        await NeedGroup.insert(
            NeedGroup(
                code=code, name_zh=name_zh.strip()[:50], name_en=name_en.strip()[:80], created_by=p.user_id
            )
        )
        await audit.record("need_group.added", principal=p, target_type="need_group", target_id=code)


async def current_rules() -> RuleSet:
    """The rules in force: the newest saved version, or the built-in default."""
    row = await LevelRuleSet.select().order_by(LevelRuleSet.version, ascending=False).first()
    if row is None:
        return RuleSet(
            rules=[dict(r) for r in levels.DEFAULT_RULES["rules"]],
            thresholds=dict(levels.DEFAULT_RULES["thresholds"]),
            version=0,
        )
    return RuleSet(rules=_json(row["rules"]), thresholds=_json(row["thresholds"]), version=row["version"])


async def rule_history() -> list[dict[str, Any]]:
    return await LevelRuleSet.select(
        LevelRuleSet.version,
        LevelRuleSet.note,
        LevelRuleSet.created_at,
        LevelRuleSet.created_by.display_name.as_alias("by_name"),
        LevelRuleSet.rules,
        LevelRuleSet.thresholds,
    ).order_by(LevelRuleSet.version, ascending=False)


async def save_rules(
    p: Principal, *, rules: list[dict[str, Any]], thresholds: Mapping[str, Any], note: str
) -> int:
    """An administrator saves a new version of the rules; every household is scored again."""
    if not is_admin(p):
        raise PermissionDenied()
    clean, parsed = levels.validate_rules(rules, dict(thresholds), await known_group_codes())
    if not note.strip():
        raise ValidationFailed.field("note", N_("Say briefly why the rules change."))
    from households import tasks

    async with db.atomic():
        latest = (
            await LevelRuleSet.select(LevelRuleSet.version)
            .order_by(LevelRuleSet.version, ascending=False)
            .first()
        )
        version = (latest["version"] if latest else 0) + 1
        await LevelRuleSet.insert(
            LevelRuleSet(
                version=version, rules=clean, thresholds=parsed, note=note.strip()[:500], created_by=p.user_id
            )
        )
        await audit.record("level_rules.saved", principal=p, target_type="level_rules", target_id=version)
        await outbox.send(tasks.rescore_all, version)
    return version


def _json(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) else value


# -- levels ------------------------------------------------------------------------------------


def facts_of(household: Mapping[str, Any], members: Iterable[Mapping[str, Any]]) -> HouseholdFacts:
    return HouseholdFacts(
        category=household["category"],
        groups=frozenset(g for g in str(household["groups"]).split(",") if g),
        members=tuple(
            MemberFacts(m["birth_date"], m["disability_grade"], bool(m["can_use_phone"])) for m in members
        ),
    )


def override_active(household: Mapping[str, Any], now: datetime) -> bool:
    until = household["override_until"]
    return household["override_level"] is not None and until is not None and until > now


@dataclass
class LevelUpdate:
    """What scoring one household changes: the columns to write and the history row to add (by name)."""

    values: dict[str, Any]
    event: dict[str, Any] | None
    level_changed: bool


def plan_rescore(
    household: Mapping[str, Any], assessment: Assessment, actor: int | None, now: datetime
) -> LevelUpdate:
    """Compare a new assessment with the stored one: nothing, a history row, or a level change."""
    old_fired = [f["rule"] for f in _json(household["level_explanation"]).get("fired", [])]
    new_fired = [f["rule"] for f in assessment.fired]
    if (
        household["computed_level"] == assessment.level
        and household["level_points"] == assessment.points
        and old_fired == new_fired
    ):
        return LevelUpdate({}, None, False)
    effective = household["override_level"] if override_active(household, now) else assessment.level
    explanation = assessment.explanation()
    values = {
        "computed_level": assessment.level,
        "level_points": assessment.points,
        "level_explanation": explanation,
        "level": effective,
    }
    changed = effective != household["level"]
    event = {
        "household": household["id"],
        "at": now,
        "actor": actor,
        "kind": "level_computed",
        "from_value": _level_text(household["computed_level"]),
        "to_value": _level_text(assessment.level),
        "detail": {
            "explanation": explanation,
            "effective_from": household["level"],
            "effective_to": effective,
        },
    }
    return LevelUpdate(values, event, changed)


def _level_text(level: int | None) -> str:
    return "" if level is None else str(level)


async def _members_of(household_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {hid: [] for hid in household_ids}
    if not household_ids:
        return grouped
    rows = await Member.select(
        Member.household, Member.birth_date, Member.disability_grade, Member.can_use_phone
    ).where(Member.household.is_in(household_ids))
    for row in rows:
        grouped[row["household"]].append(row)
    return grouped


async def rescore(
    household_ids: list[int], *, actor: int | None = None, rules: RuleSet | None = None
) -> list[int]:
    """Score households again (inside the caller's transaction); returns the level-change event ids."""
    if not household_ids:
        return []
    rules = rules or await current_rules()
    now = clock.now()
    today = clock.local_now().date()
    households = await Household.select().where(Household.id.is_in(household_ids))
    members = await _members_of(household_ids)
    updates: dict[int, LevelUpdate] = {}
    for household in households:
        if household["erased_at"] is not None:
            continue
        assessment = levels.assess(facts_of(household, members[household["id"]]), rules, today)
        update = plan_rescore(household, assessment, actor, now)
        if update.event is not None:
            updates[household["id"]] = update
    if not updates:
        return []
    # One statement for the households, one for their history, whatever the batch size.
    await db.bulk_update(Household, [{"id": hid, **update.values} for hid, update in updates.items()])
    last = await HouseholdEvent.select(HouseholdEvent.id).order_by(HouseholdEvent.id, ascending=False).first()
    await db.bulk_insert(HouseholdEvent, [update.event for update in updates.values() if update.event])
    level_changed = [hid for hid, update in updates.items() if update.level_changed]
    ids: list[int] = []
    if level_changed:
        rows = await HouseholdEvent.select(HouseholdEvent.id).where(
            (HouseholdEvent.id > (last["id"] if last else 0))
            & HouseholdEvent.household.is_in(level_changed)
            & (HouseholdEvent.kind == "level_computed")
        )
        ids = sorted(row["id"] for row in rows)
    await announce(ids)
    return ids


async def rescore_all(version: int, *, batch: int) -> int:
    """Score every household with the rules of ``version`` (or newer), a batch per transaction.

    Returns how many households were scored.  Raises if ``version`` is not visible yet (the
    actor then retries).
    """
    rules = await current_rules()
    if rules.version < version:
        raise RuntimeError(f"rules version {version} is not visible yet")
    last_id = 0
    scored = 0
    while True:
        rows = (
            await Household.select(Household.id)
            .where((Household.id > last_id) & Household.erased_at.is_null())
            .order_by(Household.id)
            .limit(batch)
        )
        if not rows:
            break
        ids = [row["id"] for row in rows]
        async with db.atomic():
            await rescore(ids, rules=rules)
        last_id = ids[-1]
        scored += len(ids)
    log.info("households rescored", extra={"rules_version": rules.version, "households": scored})
    return scored


async def announce(event_ids: list[int]) -> None:
    """Tell the subscribers of level changes, through the outbox, in batches."""
    from households import tasks

    for start in range(0, len(event_ids), tasks.ANNOUNCE_BATCH):
        await outbox.send(tasks.level_changed, event_ids[start : start + tasks.ANNOUNCE_BATCH])


def _end_of_day(day: date) -> datetime:
    """The moment a date given as "until" ends: the next local midnight."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=clock.local_zone())


async def override_level(p: Principal, household_id: int, *, level: Any, reason: str, until: Any) -> None:
    """A steward sets the level by hand, with a written reason, until a date."""
    household = await staff_household(p, household_id)
    _writable(household)
    errors: list[FieldError] = []
    try:
        new_level = int(str(level))
        if new_level not in levels.LEVELS:
            raise ValueError
    except ValueError:
        errors.append(FieldError("level", N_("Choose level 1, 2 or 3.")))
        new_level = 0
    if len(reason.strip()) < MIN_REASON:
        errors.append(FieldError("reason", N_("Write why the level is set by hand (a sentence is enough).")))
    today = clock.local_now().date()
    until_day: date | None = None
    with contextlib.suppress(ValueError):
        until_day = parse_date(until)
    if until_day is None:
        errors.append(FieldError("until", N_("Enter the last day the override applies, e.g. 2025-06-30.")))
    elif until_day < today or until_day > today + timedelta(days=MAX_OVERRIDE_DAYS):
        errors.append(FieldError("until", N_("Choose a day from today to one year ahead.")))
    if errors or until_day is None:
        raise ValidationFailed(errors=errors)
    now = clock.now()
    async with db.atomic():
        household = await staff_household(p, household_id)
        event = HouseholdEvent(
            household=household_id,
            actor=p.user_id,
            at=now,
            kind="level_override",
            from_value=_level_text(household["level"]),
            to_value=str(new_level),
            reason=reason.strip()[:1000],
            detail={
                "until": until_day.isoformat(),
                "effective_from": household["level"],
                "effective_to": new_level,
            },
        )
        await HouseholdEvent.insert(event)
        await Household.update(
            {
                Household.override_level: new_level,
                Household.override_reason: reason.strip()[:1000],
                Household.override_until: _end_of_day(until_day),
                Household.override_by: p.user_id,
                Household.level: new_level,
                Household.updated_at: now,
            }
        ).where(Household.id == household_id)
        if household["level"] != new_level:
            await announce([event.id])
    log.info("level overridden", extra={"household_id": household_id, "user_id": p.user_id})


async def end_override(household_id: int, *, actor: int | None, reason: str) -> int | None:
    """Back to the computed level (in the caller's transaction); the event id if the level changed."""
    household = await _household_row(household_id)
    if household["override_level"] is None:
        return None
    now = clock.now()
    event = HouseholdEvent(
        household=household_id,
        actor=actor,
        at=now,
        kind="override_ended",
        from_value=_level_text(household["level"]),
        to_value=_level_text(household["computed_level"]),
        reason=reason[:1000],
        detail={"effective_from": household["level"], "effective_to": household["computed_level"]},
    )
    await HouseholdEvent.insert(event)
    await Household.update(
        {
            Household.override_level: None,
            Household.override_reason: "",
            Household.override_until: None,
            Household.override_by: None,
            Household.level: household["computed_level"],
            Household.updated_at: now,
        }
    ).where(Household.id == household_id)
    return event.id if household["level"] != household["computed_level"] else None


async def clear_override(p: Principal, household_id: int, *, reason: str) -> None:
    """A steward ends an override before its date."""
    household = await staff_household(p, household_id)
    _writable(household)
    if household["override_level"] is None:
        raise Conflict(N_("This household's level is not set by hand."))
    if len(reason.strip()) < MIN_REASON:
        raise ValidationFailed.field("reason", N_("Write why the override ends early."))
    async with db.atomic():
        event_id = await end_override(household_id, actor=p.user_id, reason=reason.strip())
        if event_id is not None:
            await announce([event_id])


async def expire_overrides() -> int:
    """End every override whose last day has passed; returns how many ended."""
    now = clock.now()
    rows = await Household.select(Household.id).where(
        Household.override_level.is_not_null() & (Household.override_until <= now)
    )
    for row in rows:
        async with db.atomic():
            current = (
                await Household.select(Household.override_until).where(Household.id == row["id"]).first()
            )
            if current is None or current["override_until"] is None or current["override_until"] > now:
                continue  # ended or extended meanwhile
            event_id = await end_override(row["id"], actor=None, reason="expired")
            if event_id is not None:
                await announce([event_id])
    if rows:
        log.info("overrides expired", extra={"count": len(rows)})
    return len(rows)


# -- the registry --------------------------------------------------------------------------------


@dataclass
class ListFilters:
    level: int | None = None
    group: str | None = None
    category: str | None = None
    status: str | None = None
    community_id: int | None = None
    q: str | None = None
    sort: str = "level"


SHORT_SEARCH = 3  # characters: shorter patterns are a surname or a given name, and search names only


def _search(q: str, scope: list[int] | None = None) -> Any:
    """Name, phone, household code, or the last four characters of an ID number.

    One or two characters search members' names only (a surname, a given name); codes,
    addresses and phone numbers are searched by longer fragments.  Each kind of match is a
    subquery of household ids, joined by UNION, so that PostgreSQL reads each through its own
    index (see the households migrations "household list indexes" and "household search by
    scope") and joins only the ids it found, instead of testing every household of the
    district against every pattern.

    ``scope`` (community ids: a steward's, or the one chosen) narrows the subqueries of the
    unselective searches, one character of a name and the last four of an ID number, to the
    members of the scope's households; PostgreSQL then has two ways in and picks by its
    estimates: a surname shared by thousands of members of the district is read among the
    scope's members (indexes ``hh_household_community_id`` and ``hh_member_household_name`` of
    the "household search by scope" migration), a rare one through the index of names.  Longer
    names and phone numbers are selective: their subqueries stay as they are, as measured
    (``bench scale``: the scoped form was no faster there, and planned slower).
    """
    q = q.strip()
    if re.fullmatch(r"\d{3}[\dXx]", q):
        return Household.id.is_in(_members_where(_id_ends_with(q.upper()), scope))
    if re.fullmatch(r"\d{5,11}", q):
        return _households_where(
            f"%{q}%", [(Household.id, Household.phone), (Member.household, Member.phone)]
        )
    text = q.replace("%", "").replace("_", "")
    if len(text) < SHORT_SEARCH:
        return Household.id.is_in(_members_where(_name_contains(text), scope if len(text) == 1 else None))
    return _households_where(
        f"%{text}%",
        [(Household.id, Household.code), (Household.id, Household.address)],
        names=text,
    )


def _members_where(condition: Any, scope: list[int] | None) -> Any:
    """The households of the members matching ``condition``, within ``scope`` if given."""
    query = Member.select(Member.household).where(condition)
    if scope is not None:
        query = query.where(
            Member.household.is_in(Household.select(Household.id).where(Household.community.is_in(scope)))
        )
    return query


def _id_ends_with(last_four: str) -> Any:
    """Members whose masked ID number ends with ``last_four``.

    On PostgreSQL the last four characters are indexed (``right(id_masked, 4)``): equality
    there reads exactly the members sought, where a trigram search of ``'%1234'`` reads the
    posting lists of two digit trigrams and rechecks every candidate.
    """
    if db.is_postgres():
        return WhereRaw("right(id_masked, 4) = {}", last_four)
    return Member.id_masked.like(f"%{last_four}")


def _name_contains(text: str) -> Any:
    """Members whose name contains ``text``, in any case.

    On PostgreSQL the characters of the name are indexed (GIN over ``string_to_array``): a
    name of two or three Chinese characters has no trigram to look up, but each of its
    characters narrows the rows before the LIKE test.
    """
    condition = _contains(Member.name, f"%{text}%")
    if db.is_postgres() and text:
        condition &= WhereRaw('string_to_array(lower("name"), NULL) @> {}', list(text.lower()))
    return condition


def _households_where(pattern: str, sources: list[tuple[Any, Any]], names: str | None = None) -> Any:
    """Households among the ids of rows where a column (or a member's name) contains ``pattern``."""
    operator = "ILIKE" if db.is_postgres() else "LIKE"
    selects = [_ids_where(id_column, column, operator) for id_column, column in sources]
    args: list[Any] = [pattern] * len(sources)
    if names is not None:
        selects.append(_ids_where(Member.household, Member.name, operator))
        args.append(pattern)
        if db.is_postgres():
            selects[-1] += ' AND string_to_array(lower("name"), NULL) @> {}'
            args.append(list(names.lower()))
    return WhereRaw(f'"{Household._meta.tablename}"."id" IN ({" UNION ".join(selects)})', *args)


def _ids_where(id_column: Any, column: Any, operator: str) -> str:
    """``SELECT id FROM table WHERE column <operator> {}``; the names come from the Table classes."""
    table = column._meta.table._meta.tablename
    ids, name = id_column._meta.db_column_name, column._meta.db_column_name
    return f'SELECT "{ids}" FROM "{table}" WHERE "{name}" {operator} {{}}'  # noqa: S608


def _contains(column: Any, pattern: str) -> Any:
    # SQLite's LIKE already ignores ASCII case; Piccolo warns when asked for ILIKE there.
    return column.ilike(pattern) if db.is_postgres() else column.like(pattern)


async def list_households(p: Principal, filters: ListFilters, page: int = 1, per_page: int = 20) -> Page:
    """The households in the caller's reach, filtered, sorted and one page at a time."""
    scope = community_scope(p)
    conditions: list[Any] = []
    if scope is not None:
        if not scope:
            return Page(items=[], page=1, per_page=per_page, total=0)
        conditions.append(Household.community.is_in(sorted(scope)))
    if filters.community_id is not None:
        conditions.append(Household.community == filters.community_id)
    if filters.level is not None:
        conditions.append(Household.level == filters.level)
    if filters.category:
        conditions.append(Household.category == filters.category)
    if filters.status:
        conditions.append(Household.status == filters.status)
    if filters.group:
        conditions.append(Household.groups.like(f"%,{filters.group},%"))
    if filters.q and filters.q.strip():
        # One community chosen (by anyone) or a steward's communities: search within them.
        reach = [filters.community_id] if filters.community_id is not None else scope
        conditions.append(_search(filters.q, None if reach is None else sorted(reach)))
    sort = filters.sort or "level"
    descending = sort.startswith("-")
    column, ascending = SORTS.get(sort.lstrip("-"), SORTS["level"])
    query = Household.select(
        Household.id,
        Household.code,
        Household.community,
        Household.community.name.as_alias("community_name"),
        Household.address,
        Household.phone,
        Household.category,
        Household.groups,
        Household.status,
        Household.level,
        Household.override_level,
        Household.pseudonym,
        Household.erased_at,
        Household.updated_at,
    ).order_by(column, ascending=ascending != descending)
    query = query.order_by(Household.id)
    count = Household.count()
    for condition in conditions:
        query = query.where(condition)
        count = count.where(condition)
    result = await paginate(query, count, page, per_page)
    heads = await _heads([row["id"] for row in result.items])
    for row in result.items:
        row["groups"] = [g for g in row["groups"].split(",") if g]
        row["head_name"] = heads.get(row["id"], "")
    return result


async def _heads(household_ids: list[int]) -> dict[int, str]:
    if not household_ids:
        return {}
    rows = (
        await Member.select(Member.household, Member.name, Member.relation)
        .where(Member.household.is_in(household_ids))
        .order_by(Member.id)
    )
    heads: dict[int, str] = {}
    for row in rows:
        if row["relation"] == "head" or row["household"] not in heads:
            heads[row["household"]] = row["name"]
    return heads


def _member_view(row: Mapping[str, Any], *, with_health: bool) -> dict[str, Any]:
    """A member as pages and the API show it; the health notes only when ``with_health``."""
    view = {
        "id": row["id"],
        "name": row["name"],
        "id_number_masked": row["id_masked"],
        "birth_date": row["birth_date"],
        "sex": row["sex"],
        "relation": row["relation"],
        "phone": row["phone"],
        "disability_grade": row["disability_grade"],
        "can_use_phone": row["can_use_phone"],
        "health_recorded": row["health_cipher"] is not None,
    }
    if with_health:
        view["health"] = crypto.decrypt(row["health_cipher"], HEALTH_CONTEXT) if row["health_cipher"] else ""
    return view


async def household_detail(p: Principal, household_id: int) -> dict[str, Any]:
    """A household with its members (ID numbers masked), level explanation, history and consents.

    Staff reads are audited: the record holds personal data.
    """
    household = await visible_household(p, household_id)
    community = (
        await Community.select(
            Community.id, Community.name, Community.code, Community.street.name.as_alias("street_name")
        )
        .where(Community.id == household["community"])
        .first()
    )
    members = await Member.select().where(Member.household == household_id).order_by(Member.id)
    history = (
        await HouseholdEvent.select(
            *HouseholdEvent.all_columns(), HouseholdEvent.actor.display_name.as_alias("actor_name")
        )
        .where(HouseholdEvent.household == household_id)
        .order_by(HouseholdEvent.at, ascending=False)
        .order_by(HouseholdEvent.id, ascending=False)
    )
    consents = await Consent.select().where(Consent.household == household_id).order_by(Consent.given_on)
    steward = None
    if household["steward"] is not None:
        steward = await User.select(User.id, User.display_name).where(User.id == household["steward"]).first()
    proxies: list[dict[str, Any]] = []
    if p.role != Role.RESIDENT:
        ids = await accounts.linked_users(LinkKind.HOUSEHOLD, household_id)
        if ids:
            proxies = await User.select(User.id, User.display_name, User.phone, User.password_hash).where(
                User.id.is_in(ids)
            )
            for proxy in proxies:
                # An account without a password has not been activated by its holder yet.
                proxy["activated"] = proxy.pop("password_hash") is not None
        await audit.record("household.read", principal=p, target_type="household", target_id=household_id)
    household = dict(household)
    household["groups"] = [g for g in household["groups"].split(",") if g]
    household["level_explanation"] = _json(household["level_explanation"])
    for event in history:
        event["detail"] = _json(event["detail"])
    return {
        "household": household,
        "community": community,
        # Staff see that notes exist; reading them is a separate, audited act (read_health_notes).
        # A household reads its own notes, as it may download all its data.
        "members": [_member_view(m, with_health=p.role == Role.RESIDENT) for m in members],
        "history": history,
        "consents": consents,
        "steward": steward,
        "proxies": proxies,
        "override_active": override_active(household, clock.now()),
    }


async def my_household(p: Principal) -> dict[str, Any] | None:
    """The household a resident acts for, or None if their account is not linked yet."""
    if p.role != Role.RESIDENT:
        raise NotFound()
    linked = sorted(int(ref) for ref in p.linked(LinkKind.HOUSEHOLD) if ref.isdigit())
    if not linked:
        return None
    return await household_detail(p, linked[0])


# -- writing households and members --------------------------------------------------------------


def _encrypt_member(fields: MemberFields) -> dict[Any, Any]:
    return {
        Member.name: fields.name,
        Member.id_cipher: crypto.encrypt(fields.id_number, ID_CONTEXT),
        Member.id_index: crypto.blind_index(fields.id_number, ID_CONTEXT),
        Member.id_masked: idnumbers.mask(fields.id_number),
        Member.birth_date: fields.birth_date,
        Member.sex: fields.sex,
        Member.relation: fields.relation,
        Member.phone: fields.phone,
        Member.disability_grade: fields.disability_grade,
        Member.health_cipher: crypto.encrypt(fields.health, HEALTH_CONTEXT) if fields.health else None,
        Member.can_use_phone: fields.can_use_phone,
    }


def _member_row(household_id: int, fields: MemberFields) -> Member:
    values = {column._meta.name: value for column, value in _encrypt_member(fields).items()}
    return Member(household=household_id, **values)


async def _id_taken(id_number: str, *, except_member: int | None = None) -> dict[str, Any] | None:
    """The member already registered with this ID number (found by its blind index), if any."""
    query = Member.select(Member.id, Member.household.code.as_alias("household_code")).where(
        Member.id_index.is_in(crypto.blind_indexes(id_number, ID_CONTEXT))
    )
    if except_member is not None:
        query = query.where(Member.id != except_member)
    return await query.first()


ID_TAKEN = N_("This ID number is already registered in household %(code)s.")
CODE_TAKEN = N_("A household with this code is already registered.")
ID_RACE = N_("A member with this ID number is already registered.")


async def _taken(
    *,
    code: str | None = None,
    except_household: int | None = None,
    id_numbers: Sequence[tuple[str, str]] = (),
    except_member: int | None = None,
) -> list[FieldError]:
    """The fields whose value another household or member holds: the code, ID numbers (field, number).

    Asked before writing, and again when a unique index refused the write (a concurrent
    request won): the message names the other household by its code, never the ID number.
    """
    errors: list[FieldError] = []
    if code is not None:
        query = Household.exists().where(Household.code == code)
        if except_household is not None:
            query = query.where(Household.id != except_household)
        if await query:
            errors.append(FieldError("code", CODE_TAKEN))
    for name, number in id_numbers:
        taken = await _id_taken(number, except_member=except_member)
        if taken is not None:
            errors.append(FieldError(name, ID_TAKEN, {"code": taken["household_code"]}))
    return errors


def _lost_race(*, field: str, message: str, **checks: Any) -> Callable[[], Awaitable[Exception]]:
    """What :func:`marketplace.db.atomic_unique` raises when a concurrent request wrote the same value."""

    async def explain() -> Exception:
        errors = await _taken(**checks) or [FieldError(field, message)]
        return ValidationFailed(errors=errors)

    return explain


async def _community_options(p: Principal) -> dict[int, str]:
    return {row["id"]: row["name"] for row in await communities_for(p)}


def _household_values(fields: HouseholdFields) -> dict[Any, Any]:
    return {
        Household.code: fields.code,
        Household.community: fields.community_id,
        Household.address: fields.address,
        Household.phone: fields.phone,
        Household.category: fields.category,
        Household.groups: "," + "".join(f"{g}," for g in fields.groups),
        Household.status: fields.status,
        Household.latitude: fields.latitude,
        Household.longitude: fields.longitude,
    }


async def create_household(
    p: Principal, data: Mapping[str, Any], members: Sequence[Mapping[str, Any]]
) -> int:
    """Register a household with at least one member; scored at once."""
    if p.role not in (Role.STEWARD, Role.ADMIN):
        raise NotFound()
    errors: list[FieldError] = []
    fields: HouseholdFields | None = None
    try:
        fields = household_fields(
            data, communities=await _community_options(p), known_groups=await known_group_codes()
        )
    except ValidationFailed as exc:
        errors += exc.errors
    today = clock.local_now().date()
    clean_members: list[MemberFields] = []
    if not members:
        errors.append(FieldError("members", N_("Add at least one member.")))
    seen_ids: set[str] = set()
    id_numbers: list[tuple[str, str]] = []
    for n, raw in enumerate(members):
        prefix = f"members-{n}-"
        try:
            member = member_fields(raw, today=today, prefix=prefix)
        except ValidationFailed as exc:
            errors += exc.errors
            continue
        if member.id_number in seen_ids:
            errors.append(FieldError(f"{prefix}id_number", N_("This ID number is entered twice.")))
        else:
            id_numbers.append((f"{prefix}id_number", member.id_number))
        seen_ids.add(member.id_number)
        clean_members.append(member)
    checks: dict[str, Any] = {"code": fields.code if fields is not None else None, "id_numbers": id_numbers}
    errors += await _taken(**checks)
    income = yearly_income(data.get("yearly_income"), errors)
    if errors or fields is None:
        raise ValidationFailed(errors=errors)
    now = clock.now()
    async with db.atomic_unique(_lost_race(field="code", message=CODE_TAKEN, **checks)):
        values = {column._meta.name: value for column, value in _household_values(fields).items()}
        household = Household(
            **values,
            yearly_income=income,
            steward=p.user_id if p.role == Role.STEWARD else None,
            created_at=now,
            updated_at=now,
        )
        await Household.insert(household)
        await Member.insert(*[_member_row(household.id, m) for m in clean_members])
        await HouseholdEvent.insert(
            HouseholdEvent(
                household=household.id, actor=p.user_id, at=now, kind="created", to_value=fields.status
            )
        )
        await rescore([household.id], actor=p.user_id)
    log.info("household created", extra={"household_id": household.id, "user_id": p.user_id})
    return int(household.id)


async def update_household(p: Principal, household_id: int, data: Mapping[str, Any]) -> None:
    """Change a household's own fields (members are changed one by one).

    Only the fields in ``data`` change, the others keep their stored values (a PATCH sends
    some); a ``steward_id`` of None unassigns the steward, an empty one (the form's) keeps it.
    """
    household = await staff_household(p, household_id)
    _writable(household)
    merged = {**_stored_fields(household), **data}
    fields = household_fields(
        merged, communities=await _community_options(p), known_groups=await known_group_codes()
    )
    checks: dict[str, Any] = {"code": fields.code, "except_household": household_id}
    if fields.code != household["code"] and (taken := await _taken(**checks)):
        raise ValidationFailed(errors=taken)
    values = _household_values(fields)
    if "yearly_income" in data:
        # Only where the form or API gives it: imports do not carry the income and must not clear it.
        errors: list[FieldError] = []
        values[Household.yearly_income] = yearly_income(data.get("yearly_income"), errors)
        if errors:
            raise ValidationFailed(errors=errors)
    changed = [column._meta.name for column, value in values.items() if household[column._meta.name] != value]
    steward_id = data.get("steward_id", "")
    if steward_id != "":
        new_steward = None if steward_id is None else await _valid_steward(steward_id, fields.community_id)
        if new_steward != household["steward"]:
            values[Household.steward] = new_steward
            changed.append("steward")
    if not changed:
        return
    now = clock.now()
    async with db.atomic_unique(_lost_race(field="code", message=CODE_TAKEN, **checks)):
        await Household.update({**values, Household.updated_at: now}).where(Household.id == household_id)
        kind = "status_changed" if changed == ["status"] else "updated"
        await HouseholdEvent.insert(
            HouseholdEvent(
                household=household_id,
                actor=p.user_id,
                at=now,
                kind=kind,
                from_value=household["status"] if kind == "status_changed" else "",
                to_value=fields.status if kind == "status_changed" else "",
                detail={"fields": sorted(changed)},
            )
        )
        await rescore([household_id], actor=p.user_id)


async def _valid_steward(raw: Any, community_id: int) -> int:
    stewards = await accounts.linked_users(LinkKind.COMMUNITY, community_id)
    user_id = int(str(raw)) if str(raw).strip().isdigit() else None
    if user_id not in stewards:
        raise ValidationFailed.field("steward_id", N_("Choose a steward of this household's community."))
    assert user_id is not None
    return user_id


async def stewards_of(community_id: int) -> list[tuple[int, str]]:
    """(id, name) of the stewards of a community, as a form offers them."""
    ids = await accounts.linked_users(LinkKind.COMMUNITY, community_id)
    if not ids:
        return []
    rows = (
        await User.select(User.id, User.display_name)
        .where(User.id.is_in(ids) & (User.role == Role.STEWARD.value))
        .order_by(User.display_name)
    )
    return [(row["id"], row["display_name"]) for row in rows]


async def member_for_edit(p: Principal, household_id: int, member_id: int) -> dict[str, Any]:
    """A member's fields as the edit form shows them (the ID number masked, the health notes left out)."""
    await staff_household(p, household_id)
    row = await Member.select().where((Member.id == member_id) & (Member.household == household_id)).first()
    if row is None:
        raise NotFound()
    return _member_view(row, with_health=False)


async def save_member(
    p: Principal,
    household_id: int,
    data: Mapping[str, Any],
    *,
    member_id: int | None = None,
    partial: bool = False,
) -> int:
    """Add a member, or change one; on a change an empty ID number keeps the stored one.

    With ``partial`` (an API PATCH) the fields missing from ``data`` keep their stored values;
    a form sends them all (an unticked box is no value at all).
    """
    household = await staff_household(p, household_id)
    _writable(household)
    existing: dict[str, Any] | None = None
    if member_id is not None:
        existing = (
            await Member.select().where((Member.id == member_id) & (Member.household == household_id)).first()
        )
        if existing is None:
            raise NotFound()
    if partial and existing is not None:
        if "health" in data and not str(data["health"] or "").strip():
            # In a PATCH, health sent as null (or empty) clears the notes, like any optional field.
            data = {**data, "health_clear": True}
        stored = _member_view(existing, with_health=True)
        if str(data.get("id_number") or "").strip():
            # A new ID number brings its own birth date and sex: the stored ones were the old number's.
            stored.update(birth_date=None, sex="")
        data = {**stored, "id_number": "", **data}
    data = dict(data)
    keep_id = existing is not None and not str(data.get("id_number") or "").strip()
    if keep_id and existing is not None:
        # Validate against the stored number without ever showing it.
        data["id_number"] = crypto.decrypt(existing["id_cipher"], ID_CONTEXT) if existing["id_cipher"] else ""
    keep_health = (
        existing is not None
        and existing["health_cipher"] is not None
        and not str(data.get("health") or "").strip()
        and data.get("health_clear") not in (True, "on", "1", "true", "yes")
    )
    if keep_health and existing is not None:
        # The edit form does not show the notes (reading them is audited): empty keeps them.
        data["health"] = crypto.decrypt(existing["health_cipher"], HEALTH_CONTEXT)
    fields = member_fields(data, today=clock.local_now().date())
    checks: dict[str, Any] = {"id_numbers": [("id_number", fields.id_number)], "except_member": member_id}
    taken = await _taken(**checks)
    if taken:
        raise ValidationFailed(errors=taken)
    now = clock.now()
    async with db.atomic_unique(_lost_race(field="id_number", message=ID_RACE, **checks)):
        if existing is None:
            member = _member_row(household_id, fields)
            await Member.insert(member)
            member_id = int(member.id)
            kind = "member_added"
        else:
            assert member_id is not None
            await Member.update({**_encrypt_member(fields), Member.updated_at: now}).where(
                Member.id == member_id
            )
            kind = "member_updated"
        await HouseholdEvent.insert(
            HouseholdEvent(
                household=household_id, actor=p.user_id, at=now, kind=kind, detail={"member_id": member_id}
            )
        )
        await Household.update({Household.updated_at: now}).where(Household.id == household_id)
        await rescore([household_id], actor=p.user_id)
    return member_id


async def remove_member(p: Principal, household_id: int, member_id: int, *, reason: str) -> None:
    """Take a member off the household (moved out, deceased); the history keeps that it happened."""
    household = await staff_household(p, household_id)
    _writable(household)
    if len(reason.strip()) < MIN_REASON:
        raise ValidationFailed.field("reason", N_("Write why the member is removed."))
    count = await Member.count().where(Member.household == household_id)
    if count <= 1:
        raise Conflict(N_("A household keeps at least one member; change the status to exited instead."))
    now = clock.now()
    async with db.atomic():
        deleted = (
            await Member.delete()
            .where((Member.id == member_id) & (Member.household == household_id))
            .returning(Member.id)
        )
        if not deleted:
            raise NotFound()
        await HouseholdEvent.insert(
            HouseholdEvent(
                household=household_id,
                actor=p.user_id,
                at=now,
                kind="member_removed",
                reason=reason.strip()[:1000],
                detail={"member_id": member_id},
            )
        )
        await rescore([household_id], actor=p.user_id)


async def add_consent(p: Principal, household_id: int, data: Mapping[str, Any]) -> None:
    """Record who consented to what, when and how."""
    household = await staff_household(p, household_id)
    _writable(household)
    errors: list[FieldError] = []
    given_by = str(data.get("given_by") or "").strip()
    scope = str(data.get("scope") or "").strip()
    method = str(data.get("method") or "")
    if not given_by:
        errors.append(FieldError("given_by", N_("Enter who gave consent.")))
    if not scope:
        errors.append(FieldError("scope", N_("Say what they consented to.")))
    if method not in CONSENT_METHODS:
        errors.append(FieldError("method", N_("Choose how consent was given.")))
    given_on: date | None = None
    with contextlib.suppress(ValueError):
        given_on = parse_date(data.get("given_on"))
    if given_on is None or given_on > clock.local_now().date():
        errors.append(FieldError("given_on", N_("Enter the day consent was given (not in the future).")))
    if errors or given_on is None:
        raise ValidationFailed(errors=errors)
    async with db.atomic():
        await Consent.insert(
            Consent(
                household=household_id,
                given_by=given_by[:50],
                scope=scope[:200],
                method=method,
                given_on=given_on,
                recorded_by=p.user_id,
            )
        )
        await HouseholdEvent.insert(
            HouseholdEvent(household=household_id, actor=p.user_id, kind="consent_recorded", to_value=method)
        )


# -- personal data: unmasking, export, erasure, proxies ------------------------------------------


async def reveal_id_number(p: Principal, household_id: int, member_id: int, *, reason: str) -> str:
    """The full ID number, for a steward of the household's community who says why (audited)."""
    await _community_steward(
        p, household_id, N_("Only a steward of this household's community can see a full ID number.")
    )
    if len(reason.strip()) < MIN_REASON:
        raise ValidationFailed.field("reason", N_("Say why you need the full ID number."))
    number = await _read_member_secret(
        p, household_id, member_id, (Member.id_cipher, ID_CONTEXT, "household.read_id_number"), reason
    )
    if number is None:
        raise NotFound()
    return number


async def _community_steward(p: Principal, household_id: int, refusal: str) -> dict[str, Any]:
    """The household, if ``p`` is a steward of its community (NotFound out of reach, else ``refusal``)."""
    household = await staff_household(p, household_id)
    if p.role != Role.STEWARD or not p.is_linked(LinkKind.COMMUNITY, household["community"]):
        raise PermissionDenied(refusal)
    return household


async def _read_member_secret(
    p: Principal, household_id: int, member_id: int, secret: tuple[Any, str, str], reason: str
) -> str | None:
    """Decrypt one member's secret (column, context, audit action) and audit the read; None if not stored."""
    column, context, action = secret
    row = (
        await Member.select(column)
        .where((Member.id == member_id) & (Member.household == household_id))
        .first()
    )
    if row is None:
        raise NotFound()
    cipher = row[column._meta.name]
    if not cipher:
        return None
    await audit.record(
        action,
        principal=p,
        target_type="member",
        target_id=member_id,
        household_id=household_id,
        reason=reason.strip()[:500],
    )
    return crypto.decrypt(cipher, context)


async def read_health_notes(p: Principal, household_id: int, member_id: int, *, reason: str = "") -> str:
    """A member's health notes, for a steward of the household's community (audited; reason optional)."""
    await _community_steward(
        p, household_id, N_("Only a steward of this household's community can read health notes.")
    )
    notes = await _read_member_secret(
        p, household_id, member_id, (Member.health_cipher, HEALTH_CONTEXT, "household.read_health"), reason
    )
    return notes or ""


async def export_household(p: Principal, household_id: int, *, reason: str = "") -> dict[str, Any]:
    """Everything held about a household, ID numbers and health notes included (audited).

    For the household itself (a linked resident) or a steward of its community, who says why.
    """
    if p.role == Role.RESIDENT:
        household = await visible_household(p, household_id)
    else:
        household = await _community_steward(
            p, household_id, N_("Only a steward of this household's community can export its data.")
        )
        if len(reason.strip()) < MIN_REASON:
            raise ValidationFailed.field("reason", N_("Say why the data is exported."))
    members = await Member.select().where(Member.household == household_id).order_by(Member.id)
    history = (
        await HouseholdEvent.select()
        .where(HouseholdEvent.household == household_id)
        .order_by(HouseholdEvent.id)
    )
    consents = await Consent.select().where(Consent.household == household_id).order_by(Consent.id)
    community = (
        await Community.select(Community.code, Community.name)
        .where(Community.id == household["community"])
        .first()
    )
    await audit.record(
        "household.exported",
        principal=p,
        target_type="household",
        target_id=household_id,
        reason=reason.strip()[:500],
    )
    return {
        "exported_at": clock.now().isoformat(),
        "household": {
            "code": household["code"],
            "community": community,
            "address": household["address"],
            "latitude": household["latitude"],
            "longitude": household["longitude"],
            "phone": household["phone"],
            "category": household["category"],
            "groups": [g for g in household["groups"].split(",") if g],
            "status": household["status"],
            "level": household["level"],
            "level_explanation": _json(household["level_explanation"]),
            "override": {
                "level": household["override_level"],
                "reason": household["override_reason"],
                "until": household["override_until"].isoformat() if household["override_until"] else None,
            },
            "created_at": household["created_at"].isoformat(),
        },
        "members": [
            {
                "name": m["name"],
                "id_number": crypto.decrypt(m["id_cipher"], ID_CONTEXT) if m["id_cipher"] else None,
                "birth_date": m["birth_date"].isoformat() if m["birth_date"] else None,
                "sex": m["sex"],
                "relation": m["relation"],
                "phone": m["phone"],
                "disability_grade": m["disability_grade"],
                "health": crypto.decrypt(m["health_cipher"], HEALTH_CONTEXT) if m["health_cipher"] else "",
                "can_use_phone": m["can_use_phone"],
            }
            for m in members
        ],
        "consents": [
            {
                "given_by": c["given_by"],
                "scope": c["scope"],
                "method": c["method"],
                "given_on": c["given_on"].isoformat(),
            }
            for c in consents
        ],
        "history": [
            {
                "at": e["at"].isoformat(),
                "kind": e["kind"],
                "from": e["from_value"],
                "to": e["to_value"],
                "reason": e["reason"],
                "by_user_id": e["actor"],
            }
            for e in history
        ],
    }


async def erase_household(p: Principal, household_id: int, *, reason: str, confirm_code: str) -> str:
    """Remove a household's personal data; its history stays, under a pseudonym (audited).

    The person confirms by typing the household code.  Returns the pseudonym.
    """
    household = await staff_household(p, household_id)
    _writable(household)
    errors: list[FieldError] = []
    if len(reason.strip()) < MIN_REASON:
        errors.append(
            FieldError(
                "reason", N_("Say why the data is erased (e.g. the household asked, or left the programme).")
            )
        )
    if confirm_code.strip() != household["code"]:
        errors.append(FieldError("confirm_code", N_("Type the household code exactly to confirm.")))
    if errors:
        raise ValidationFailed(errors=errors)
    from households import erasure

    pseudonym = "X" + secrets.token_hex(4).upper()
    now = clock.now()
    async with db.atomic():
        erased = await erasure.collect(household, pseudonym)
        await erasure.erase(erased, now)
        # The reason may name the person: it is kept without their values too.
        reason = erased.scrub(reason.strip())
        await HouseholdEvent.insert(
            HouseholdEvent(
                household=household_id, actor=p.user_id, at=now, kind="erased", reason=reason[:1000]
            )
        )
        await audit.record(
            "household.erased",
            principal=p,
            target_type="household",
            target_id=household_id,
            reason=reason.strip()[:500],
        )
    return pseudonym


PROXY_RACE = N_(
    "An account with this phone number was created at this very moment. Reload the page and look at "
    "the family accounts before linking it again."
)


async def link_proxy(p: Principal, household_id: int, *, phone: str, name: str) -> int:
    """Link a family member's resident account to the household, creating it if the phone is new.

    A new account has no password yet: it is activated with a one-time code sent to the phone.
    """
    household = await staff_household(p, household_id)
    _writable(household)
    errors: list[FieldError] = []
    try:
        phone = accounts.validate_phone(phone)
    except ValidationFailed as exc:
        errors += exc.errors
    user = await User.select(User.id, User.role).where(User.phone == phone).first() if not errors else None
    if user is None and not name.strip():
        errors.append(FieldError("display_name", N_("Enter the name of the family member.")))
    if user is not None and user["role"] != Role.RESIDENT.value:
        errors.append(
            FieldError(
                "phone",
                N_("This phone number belongs to a staff account; use the family member's own number."),
            )
        )
    if errors:
        raise ValidationFailed(errors=errors)
    async with db.atomic_unique(_lost_race(field="phone", message=PROXY_RACE)):
        if user is None:
            created = await accounts.create_user(phone=phone, display_name=name.strip(), role=Role.RESIDENT)
            user_id = int(created.id)
        else:
            user_id = int(user["id"])
        await accounts.link(user_id, LinkKind.HOUSEHOLD, household_id)
        await HouseholdEvent.insert(
            HouseholdEvent(
                household=household_id, actor=p.user_id, kind="proxy_linked", detail={"user_id": user_id}
            )
        )
        await audit.record(
            "household.proxy_linked",
            principal=p,
            target_type="household",
            target_id=household_id,
            user=user_id,
        )
    return user_id


async def unlink_proxy(p: Principal, household_id: int, user_id: int) -> None:
    await staff_household(p, household_id)
    if user_id not in await accounts.linked_users(LinkKind.HOUSEHOLD, household_id):
        raise NotFound()
    async with db.atomic():
        await accounts.unlink(user_id, LinkKind.HOUSEHOLD, household_id)
        await HouseholdEvent.insert(
            HouseholdEvent(
                household=household_id, actor=p.user_id, kind="proxy_unlinked", detail={"user_id": user_id}
            )
        )
        await audit.record(
            "household.proxy_unlinked",
            principal=p,
            target_type="household",
            target_id=household_id,
            user=user_id,
        )


def category_label(code: str) -> str:
    return gettext(CATEGORIES.get(code, code))


async def form_options(p: Principal) -> dict[str, Any]:
    """The choices the household forms offer, in the reader's language."""
    from households.validation import RELATIONS, SEXES, STATUSES

    communities = await communities_for(p)
    groups = await need_groups()
    return {
        "communities": communities,
        "community_options": [(c["id"], f"{c['name']} · {c['street_name']}") for c in communities],
        "groups": groups,
        "group_options": [(g.code, g.label) for g in groups],
        "labels": await labels(),
        "categories": [(code, gettext(label)) for code, label in CATEGORIES.items()],
        "statuses": [(code, gettext(label)) for code, label in STATUSES.items()],
        "relations": [(code, gettext(label)) for code, label in RELATIONS.items()],
        "sexes": [(code, gettext(label)) for code, label in SEXES.items()],
        "consent_methods": [(code, gettext(label)) for code, label in CONSENT_METHODS.items()],
        "levels": list(levels.LEVELS),
    }


def _stored_fields(h: Mapping[str, Any]) -> dict[str, Any]:
    """A stored household's own fields as :func:`household_fields` reads them (and a form shows them)."""
    return {
        "code": h["code"],
        "community_id": str(h["community"]),
        "address": h["address"],
        "phone": h["phone"],
        "category": h["category"],
        "groups": h["groups"],
        "status": h["status"],
        "latitude": "" if h["latitude"] is None else str(h["latitude"]),
        "longitude": "" if h["longitude"] is None else str(h["longitude"]),
    }


def household_form_values(detail: dict[str, Any]) -> dict[str, Any]:
    """A stored household as the edit form's values."""
    h = detail["household"]
    return {
        **_stored_fields(h),
        "yearly_income": "" if h["yearly_income"] is None else str(h["yearly_income"]),
        "steward_id": "" if h["steward"] is None else str(h["steward"]),
    }


async def labels() -> dict[str, dict[str, str]]:
    """Code → label of every coded value a page shows, in the reader's language."""
    from households.validation import RELATIONS, SEXES, STATUSES

    return {
        "categories": {code: gettext(label) for code, label in CATEGORIES.items()},
        "groups": {g.code: g.label for g in await need_groups()},
        "statuses": {code: gettext(label) for code, label in STATUSES.items()},
        "relations": {code: gettext(label) for code, label in RELATIONS.items()},
        "sexes": {code: gettext(label) for code, label in SEXES.items()},
        "consent_methods": {code: gettext(label) for code, label in CONSENT_METHODS.items()},
        "rule_kinds": {code: gettext(label) for code, label in levels.RULE_KINDS.items()},
        "events": {code: gettext(label) for code, label in EVENT_LABELS.items()},
    }


async def my_household_id(p: Principal) -> int:
    """The id of the household a resident acts for; NotFound when not linked."""
    if p.role != Role.RESIDENT:
        raise NotFound()
    linked = sorted(int(ref) for ref in p.linked(LinkKind.HOUSEHOLD) if ref.isdigit())
    if not linked:
        raise NotFound()
    return linked[0]


BLANK_RULE_ROWS = 2


def rules_from_form(form: Any) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """The rule editor's rows (``rules-<n>-<part>``) as rule dicts; empty new rows are skipped."""
    rows: dict[int, dict[str, Any]] = {}
    for key in form:
        match = re.fullmatch(r"rules-(\d+)-(\w+)", key)
        if match:
            rows.setdefault(int(match.group(1)), {})[match.group(2)] = form.get(key)
    rules = []
    for n in sorted(rows):
        row = rows[n]
        if row.get("new") and not str(row.get("id") or "").strip():
            continue
        row["enabled"] = row.get("enabled") in ("on", "1", "true", True)
        row.pop("new", None)
        rules.append(row)
    thresholds = {"level1": form.get("level1", ""), "level2": form.get("level2", "")}
    return rules, thresholds, str(form.get("note") or "")


async def rules_page(
    *, rules: list[dict[str, Any]] | None = None, thresholds: Mapping[str, Any] | None = None, note: str = ""
) -> dict[str, Any]:
    """What the rule editor shows: the rules in force (or as typed), blank rows, the history."""
    current = await current_rules()
    shown = rules if rules is not None else [dict(r, enabled=r.get("enabled", True)) for r in current.rules]
    blanks = [{"new": True, "enabled": True} for _ in range(BLANK_RULE_ROWS)]
    return {
        "rules": shown + blanks,
        "thresholds": thresholds if thresholds is not None else current.thresholds,
        "note": note,
        "version": current.version,
        "history": await rule_history(),
        "kinds": [(code, gettext(label)) for code, label in levels.RULE_KINDS.items()],
        "categories": [(code, gettext(label)) for code, label in CATEGORIES.items()],
        "groups": await need_groups(),
        "errors": {},
    }
