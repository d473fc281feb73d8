"""Monitoring → warning → verification → handling (监测—预警—核实—处置): what people and actors do.

Signals arrive from other departments' systems (the API, in batches), from an administrator's
CSV file, or from a steward.  :func:`ingest` checks them, stores each once per sender and
event id, matches the person to a household by the blind index of their ID number (nothing is
decrypted to match) or by the household code, and lets the warning rules decide: a signal
that fires a rule opens a warning, or joins the household's warning still open within the
dedupe window.  A warning goes to the household's steward, else the community's duty steward,
else the street's supervisor, who is notified at once; a warning not verified by its deadline
is escalated to the supervisor of the street.  The steward records the home visit, then the
handling decision, which closes the warning.

Who reaches a warning: administrators all of them; a steward those of the communities linked
to them and of the streets they supervise.  Anything else answers NotFound.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from piccolo.columns.combination import WhereRaw

from households import handoffs, idnumbers, levels
from households import services as registry
from households.signals import (
    KINDS,
    MAX_BATCH,
    SEVERITY_RANK,
    CleanSignal,
    OpenWarning,
    Outcome,
    SignalFacts,
    WarningRules,
    absorbs,
    clean_signal,
    default_rules,
    evaluate,
    median_hours,
    merge,
)
from households.tables import (
    Community,
    Household,
    HouseholdWarning,
    Member,
    Signal,
    Street,
    Verification,
    VerificationPhoto,
    WarningEvent,
    WarningRuleSet,
)
from households.validation import parse_date
from marketplace import accounts, audit, clock, crypto, db, outbox
from marketplace.auth import LinkKind, Principal, Role
from marketplace.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed
from marketplace.i18n import N_, current_locale, gettext
from marketplace.pagination import Page, paginate
from marketplace.settings import get_settings
from marketplace.tables import User, UserLink

log = logging.getLogger("cloudmarket.households")

SIGNAL_ID_CONTEXT = "signal.id_number"
SOURCES = {
    "api": N_("Another department's system"),
    "csv": N_("File uploaded by an administrator"),
    "steward": N_("Reported by a steward"),
}
STATUSES = {"open": N_("To verify"), "verified": N_("Verified, to handle"), "closed": N_("Closed")}
OUTCOMES: dict[str, str] = {
    "no_action": N_("No action needed"),
    "change_level": N_("Change the need level"),
    "grant_credits": N_("Grant temporary service credits"),
    "book_services": N_("Book services now"),
    "referral": N_("Refer to another programme"),
}
# Needs a visit may find beside the catalog's services (which are bookable): other programmes' help.
OTHER_NEEDS: dict[str, str] = {
    "medical_aid": N_("Medical assistance"),
    "temporary_aid": N_("Temporary assistance"),
    "housing": N_("Housing"),
    "schooling": N_("Schooling support"),
    "employment": N_("Help finding work"),
    "counselling": N_("Counselling"),
}
EVENT_KINDS = {
    "opened": N_("Warning opened"),
    "signal_added": N_("Another signal joined"),
    "assigned": N_("Assigned"),
    "escalated": N_("Escalated: not verified in time"),
    "verified": N_("Home visit recorded"),
    "closed": N_("Handled and closed"),
    "handed_off": N_("Passed on"),
}
ASSIGNED_VIA = {
    "household_steward": N_("the household's steward"),
    "duty_steward": N_("the community's duty steward"),
    "supervisor": N_("the street's supervisor (no steward available)"),
    "reassigned": N_("reassigned by hand"),
    "none": N_("nobody: no steward, duty steward or supervisor is set"),
}
PHOTO_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
MAX_PHOTO_BYTES = 5 * 1024 * 1024
MAX_PHOTOS = 6
MAX_CSV_BYTES = 5 * 1024 * 1024
MAX_CSV_ROWS = 10_000
MAX_CREDITS = 1000
MAX_CREDIT_DAYS = 92
PER_PAGE = 20
ESCALATE_BATCH = 200
MIN_TEXT = 4


def number(warning_id: int) -> str:
    """The warning's number as people read and say it."""
    return f"YJ{warning_id:06d}"


def kind_label(code: str) -> str:
    kind = KINDS.get(code)
    return gettext(kind.label) if kind else code


# -- who reaches what ----------------------------------------------------------------------------


async def warning_scope(p: Principal) -> set[int] | None:
    """The communities whose warnings a caller reaches (None: all): linked ones and supervised streets'."""
    if registry.is_admin(p):
        return None
    if p.role != Role.STEWARD or p.user_id is None:
        raise NotFound()
    linked = {int(ref) for ref in p.linked(LinkKind.COMMUNITY) if ref.isdigit()}
    supervised = await Community.select(Community.id).where(Community.street.supervisor == p.user_id)
    return linked | {row["id"] for row in supervised}


async def _warning_row(p: Principal, warning_id: int) -> dict[str, Any]:
    scope = await warning_scope(p)
    row = await HouseholdWarning.select().where(HouseholdWarning.id == warning_id).first()
    if row is None or (scope is not None and row["community"] not in scope):
        raise NotFound()
    return row


# -- the rules -------------------------------------------------------------------------------------


async def current_rules() -> WarningRules:
    """The warning rules in force: the newest saved version, or the built-in default."""
    row = await WarningRuleSet.select().order_by(WarningRuleSet.version, ascending=False).first()
    if row is None:
        return default_rules()
    return WarningRules(rules=_json(row["rules"]), window_hours=row["window_hours"], version=row["version"])


async def rule_history() -> list[dict[str, Any]]:
    return await WarningRuleSet.select(
        WarningRuleSet.version,
        WarningRuleSet.note,
        WarningRuleSet.window_hours,
        WarningRuleSet.created_at,
        WarningRuleSet.created_by.display_name.as_alias("by_name"),
    ).order_by(WarningRuleSet.version, ascending=False)


async def save_rules(p: Principal, *, rules: list[dict[str, Any]], window_hours: Any, note: str) -> int:
    """An administrator saves a new version of the warning rules; signals from now on use it."""
    from households.signals import validate_rules

    if not registry.is_admin(p):
        raise PermissionDenied()
    clean, window = validate_rules(rules, window_hours)
    if not note.strip():
        raise ValidationFailed.field("note", N_("Say briefly why the rules change."))
    async with db.atomic():
        latest = (
            await WarningRuleSet.select(WarningRuleSet.version)
            .order_by(WarningRuleSet.version, ascending=False)
            .first()
        )
        version = (latest["version"] if latest else 0) + 1
        await WarningRuleSet.insert(
            WarningRuleSet(
                version=version,
                rules=clean,
                window_hours=window,
                note=note.strip()[:500],
                created_by=p.user_id,
            )
        )
        await audit.record("warning_rules.saved", principal=p, target_type="warning_rules", target_id=version)
    return version


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# -- taking signals in -------------------------------------------------------------------------------


@dataclass
class ItemResult:
    """What became of one signal of a batch."""

    index: int
    event_id: str
    status: str  # accepted, duplicate, rejected
    signal_id: int | None = None
    errors: list[FieldError] = field(default_factory=list)


@dataclass
class _Item:
    index: int
    signal: CleanSignal
    key: str
    id_indexes: list[str]
    household: int | None = None
    matched_by: str = ""
    outcome: Outcome | None = None


async def ingest(
    items: Sequence[Mapping[str, Any]],
    *,
    source: str,
    sender: str,
    principal: Principal | None = None,
    reported_by: int | None = None,
) -> list[ItemResult]:
    """Check, store, match and evaluate a batch of signals; one result per item, in order.

    ``sender`` names whose event ids these are (``c12`` for API client 12, ``csv`` for uploads,
    ``steward``): a signal is stored once per sender and event id.  Sending it again with the
    same content answers ``duplicate`` with the stored id; with other content it is rejected.
    """
    if not items:
        raise ValidationFailed.field("signals", N_("Send at least one signal."))
    if len(items) > MAX_BATCH:
        raise ValidationFailed.field(
            "signals",
            N_("A batch holds at most %(max)s signals; this one has %(n)s. Split it into smaller batches."),
            max=f"{MAX_BATCH:,}",
            n=f"{len(items):,}",
        )
    today = clock.local_now().date()
    results: list[ItemResult] = []
    valid: list[_Item] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(items):
        event_id = str(raw.get("event_id") or "") if isinstance(raw, Mapping) else ""
        result = ItemResult(index=index, event_id=event_id, status="rejected")
        results.append(result)
        if not isinstance(raw, Mapping):
            result.errors = [FieldError("signal", N_("Each signal is an object."))]
            continue
        try:
            signal = clean_signal(raw, today=today, require_event_id=source == "api")
        except ValidationFailed as exc:
            result.errors = exc.errors
            continue
        if not signal.event_id:
            # Files without an event id column: the row's content is its id (a file sent twice adds nothing).
            signal.event_id = _content_id(signal) if source == "csv" else uuid.uuid4().hex
            result.event_id = signal.event_id
        key = f"{sender}:{signal.event_id}"
        if key in seen:
            result.errors = [
                FieldError(
                    "event_id",
                    N_("This event id appears more than once in the batch (first at index %(first)s)."),
                    {"first": seen[key]},
                )
            ]
            continue
        seen[key] = index
        indexes = crypto.blind_indexes(signal.id_number, registry.ID_CONTEXT) if signal.id_number else []
        valid.append(_Item(index=index, signal=signal, key=key, id_indexes=indexes))
    if not valid:
        return results
    await _match(valid)
    async with db.atomic():
        if db.is_postgres():
            # Batches of one sender take turns, so that the check for repeats below holds.
            await db.engine().run_ddl(f"SELECT pg_advisory_xact_lock(hashtext('signals:{_quote(sender)}'))")
        fresh = await _drop_repeats(valid, results)
        if fresh:
            await _store(
                fresh,
                source=source,
                sender_client=principal.client_id if principal else None,
                reported_by=reported_by,
            )
        if fresh:
            stored = await Signal.select(Signal.id, Signal.key).where(
                _among(Signal.key, [i.key for i in fresh])
            )
            ids = {row["key"]: row["id"] for row in stored}
            for item in fresh:
                results[item.index].status = "accepted"
                results[item.index].signal_id = ids[item.key]
        await audit.record(
            "signals.received",
            principal=principal,
            user_id=reported_by,
            target_type="signal_batch",
            target_id=source,
            accepted=len(fresh),
            duplicate=sum(1 for r in results if r.status == "duplicate"),
            rejected=sum(1 for r in results if r.status == "rejected"),
        )
    log.info(
        "signals received",
        extra={
            "source": source,
            "items": len(items),
            "accepted": sum(r.status == "accepted" for r in results),
        },
    )
    return results


def _among(column: Any, values: Sequence[Any]) -> Any:
    """``column IN values`` for long lists: one bound array on PostgreSQL (Piccolo renders each value)."""
    if db.is_postgres():
        name = f'"{column._meta.table._meta.tablename}"."{column._meta.db_column_name}"'
        return WhereRaw(f"{name} = ANY({{}})", list(values))
    return column.is_in(list(values))


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _content_id(signal: CleanSignal) -> str:
    digest = crypto.blind_index(f"{signal.content_hash()}:{signal.id_number}", "signal.row")
    return "row-" + digest.partition(".")[2][:32]


async def _match(items: list[_Item]) -> None:
    """Find each signal's household: by the ID number's blind index first, then by household code."""
    indexes = sorted({ix for item in items for ix in item.id_indexes})
    by_index: dict[str, int] = {}
    for start in range(0, len(indexes), 900):
        rows = await Member.select(Member.id_index, Member.household).where(
            _among(Member.id_index, indexes[start : start + 900])
        )
        by_index.update({row["id_index"]: row["household"] for row in rows})
    codes = sorted({item.signal.household_code for item in items if item.signal.household_code})
    by_code: dict[str, int] = {}
    for start in range(0, len(codes), 900):
        rows = await Household.select(Household.id, Household.code).where(
            Household.code.is_in(codes[start : start + 900]) & Household.erased_at.is_null()
        )
        by_code.update({row["code"]: row["id"] for row in rows})
    for item in items:
        found = next((by_index[ix] for ix in item.id_indexes if ix in by_index), None)
        if found is not None:
            item.household, item.matched_by = found, "id_number"
        elif item.signal.household_code in by_code:
            item.household, item.matched_by = by_code[item.signal.household_code], "household_code"


async def _drop_repeats(items: list[_Item], results: list[ItemResult]) -> list[_Item]:
    """Items not stored before; a repeat is ``duplicate`` if its content is the same, else rejected."""
    stored: dict[str, dict[str, Any]] = {}
    keys = [item.key for item in items]
    for start in range(0, len(keys), 900):
        rows = await Signal.select(Signal.id, Signal.key, Signal.content_hash, Signal.id_index).where(
            _among(Signal.key, keys[start : start + 900])
        )
        stored.update({row["key"]: row for row in rows})
    fresh: list[_Item] = []
    for item in items:
        before = stored.get(item.key)
        if before is None:
            fresh.append(item)
            continue
        result = results[item.index]
        same_person = (
            (before["id_index"] in item.id_indexes) if item.id_indexes else before["id_index"] is None
        )
        if before["content_hash"] == item.signal.content_hash() and same_person:
            result.status, result.signal_id = "duplicate", before["id"]
        else:
            result.errors = [
                FieldError(
                    "event_id",
                    N_("This event id was already used for a different signal (number %(id)s)."),
                    {"id": before["id"]},
                )
            ]
    return fresh


@dataclass
class _NewWarning:
    household: int
    community: int
    first_key: str
    state: OpenWarning
    assigned_to: int | None
    assigned_via: str
    items: list[_Item] = field(default_factory=list)


@dataclass
class _Plan:
    """What a batch does to warnings: new ones, open ones it extends, and each signal's warning."""

    new: dict[int, _NewWarning] = field(default_factory=dict)
    changed: dict[int, OpenWarning] = field(default_factory=dict)
    joined: dict[int, list[_Item]] = field(default_factory=dict)
    warning_of: dict[str, int | str] = field(default_factory=dict)  # signal key → warning id or first key


async def _plan(items: list[_Item], now: datetime) -> _Plan:
    """Lock the households concerned, apply the rules, and decide which warning each signal opens or joins."""
    plan = _Plan()
    household_ids = sorted({item.household for item in items if item.household is not None})
    if not household_ids:
        return plan
    households = await _lock_households(household_ids)
    rules = await current_rules()
    open_warnings = await _open_warnings(household_ids, now - timedelta(hours=rules.window_hours))
    assignees = await _assignees([households[h] for h in household_ids])
    for item in items:
        if item.household is None:
            continue
        household = households[item.household]
        item.outcome = evaluate(
            rules, SignalFacts(item.signal.kind, item.signal.details, household["yearly_income"])
        )
        if item.outcome is None:
            continue
        existing = open_warnings.get(item.household)
        if existing is not None and absorbs(_state(existing), now, rules.window_hours):
            wid = existing["id"]
            plan.changed[wid] = merge(plan.changed.get(wid) or _state(existing), item.outcome, now)
            plan.joined.setdefault(wid, []).append(item)
            plan.warning_of[item.key] = wid
        elif item.household in plan.new:
            pending = plan.new[item.household]
            pending.state = merge(pending.state, item.outcome, now)
            pending.items.append(item)
            plan.warning_of[item.key] = pending.first_key
        else:
            assigned_to, via = assignees[item.household]
            state = OpenWarning(
                severity=item.outcome.severity,
                deadline_at=now + timedelta(hours=item.outcome.deadline_hours),
                rule=item.outcome.rule,
                opened_at=now,
            )
            plan.new[item.household] = _NewWarning(
                household=item.household,
                community=household["community"],
                first_key=item.key,
                state=state,
                assigned_to=assigned_to,
                assigned_via=via,
                items=[item],
            )
            plan.warning_of[item.key] = item.key
    return plan


async def _open_warnings(household_ids: list[int], since: datetime) -> dict[int, dict[str, Any]]:
    """The warning still open for each household, if it opened within the dedupe window."""
    rows = (
        await HouseholdWarning.select()
        .where(
            _among(HouseholdWarning.household, household_ids)
            & (HouseholdWarning.status != "closed")
            & (HouseholdWarning.opened_at >= since)
        )
        .order_by(HouseholdWarning.id)
    )
    return {row["household"]: row for row in rows}


async def _insert_warnings(new: Mapping[int, _NewWarning], now: datetime) -> dict[str, int]:
    """Write the new warnings at once; returns their ids by the key of the signal that opened each."""
    if not new:
        return {}
    rows = [
        {
            "household": w.household,
            "community": w.community,
            "first_signal": w.first_key,
            "severity": w.state.severity,
            "severity_rank": SEVERITY_RANK[w.state.severity],
            "rule": w.state.rule,
            "signal_count": w.state.signal_count,
            "opened_at": now,
            "last_signal_at": now,
            "deadline_at": w.state.deadline_at,
            "assigned_to": w.assigned_to,
            "assigned_via": w.assigned_via,
            "assigned_at": now if w.assigned_to is not None else None,
        }
        for w in new.values()
    ]
    await db.bulk_insert(HouseholdWarning, rows)
    found = await HouseholdWarning.select(HouseholdWarning.id, HouseholdWarning.first_signal).where(
        _among(HouseholdWarning.first_signal, [w.first_key for w in new.values()])
    )
    return {row["first_signal"]: row["id"] for row in found}


def _signal_row(
    item: _Item,
    *,
    source: str,
    sender_client: int | None,
    reported_by: int | None,
    warning: int | None,
    now: datetime,
) -> dict[str, Any]:
    signal = item.signal
    return {
        "key": item.key,
        "source": source,
        "sender_client": sender_client,
        "event_id": signal.event_id,
        "content_hash": signal.content_hash(),
        "kind": signal.kind,
        "occurred_on": signal.occurred_on,
        "received_at": now,
        "id_cipher": crypto.encrypt(signal.id_number, SIGNAL_ID_CONTEXT) if signal.id_number else None,
        "id_index": item.id_indexes[0] if item.id_indexes else None,
        "id_masked": idnumbers.mask(signal.id_number) if signal.id_number else "",
        "person_name": signal.person_name,
        "household_code": signal.household_code,
        "community_code": signal.community_code,
        "details": signal.details,
        "note": signal.note,
        "status": "matched" if item.household is not None else "unmatched",
        "matched_by": item.matched_by,
        "household": item.household,
        "warning": warning,
        "rule": item.outcome.rule if item.outcome else "",
        "reported_by": reported_by,
    }


async def _store(
    items: list[_Item], *, source: str, sender_client: int | None, reported_by: int | None
) -> None:
    """Write the signals, open or extend warnings, and ask for the assignees to be told (one transaction)."""
    from households import tasks

    now = clock.now()
    plan = await _plan(items, now)
    new_ids = await _insert_warnings(plan.new, now)
    rows = [
        _signal_row(
            item,
            source=source,
            sender_client=sender_client,
            reported_by=reported_by,
            now=now,
            warning=_warning_id(plan.warning_of.get(item.key), new_ids),
        )
        for item in items
    ]
    await db.bulk_insert(Signal, rows)
    await _write_changes(plan.changed, now)
    events: list[dict[str, Any]] = []
    for w in plan.new.values():
        wid = new_ids[w.first_key]
        events.append(_event(wid, "opened", now, None, {"signals": len(w.items), "rule": w.state.rule}))
        events.append(_event(wid, "assigned", now, None, {"to": w.assigned_to, "via": w.assigned_via}))
    for wid, joining in plan.joined.items():
        events.append(_event(wid, "signal_added", now, None, {"signals": len(joining)}))
    if events:
        await db.bulk_insert(WarningEvent, events)
    to_tell = sorted(new_ids[w.first_key] for w in plan.new.values() if w.assigned_to is not None)
    for start in range(0, len(to_tell), 500):
        await outbox.send(tasks.notify_assigned, to_tell[start : start + 500])


def _warning_id(ref: int | str | None, new_ids: Mapping[str, int]) -> int | None:
    if ref is None:
        return None
    return ref if isinstance(ref, int) else new_ids[ref]


def _event(
    warning_id: int, kind: str, at: datetime, actor: int | None, detail: dict[str, Any]
) -> dict[str, Any]:
    return {"warning": warning_id, "at": at, "actor": actor, "kind": kind, "detail": detail}


def _state(row: Mapping[str, Any]) -> OpenWarning:
    return OpenWarning(
        severity=row["severity"],
        deadline_at=row["deadline_at"],
        rule=row["rule"],
        opened_at=row["opened_at"],
        signal_count=row["signal_count"],
    )


async def _write_changes(changed: Mapping[int, OpenWarning], now: datetime) -> None:
    """Write what further signals changed on open warnings (one statement on PostgreSQL)."""
    if not changed:
        return
    if db.is_postgres():
        ids = list(changed)
        states = [changed[wid] for wid in ids]
        # Table and column names are fixed here; every value is bound.
        await HouseholdWarning.raw(
            "UPDATE hh_warning AS w SET severity = v.severity, severity_rank = v.rank, rule = v.rule, "
            "deadline_at = v.deadline, signal_count = v.count, last_signal_at = {} "
            "FROM unnest({}::int[], {}::text[], {}::int[], {}::text[], {}::timestamptz[], {}::int[]) "
            "AS v(id, severity, rank, rule, deadline, count) WHERE w.id = v.id",
            now,
            ids,
            [s.severity for s in states],
            [SEVERITY_RANK[s.severity] for s in states],
            [s.rule for s in states],
            [s.deadline_at for s in states],
            [s.signal_count for s in states],
        )
        return
    for wid, state in changed.items():
        await HouseholdWarning.update(
            {
                HouseholdWarning.severity: state.severity,
                HouseholdWarning.severity_rank: SEVERITY_RANK[state.severity],
                HouseholdWarning.rule: state.rule,
                HouseholdWarning.deadline_at: state.deadline_at,
                HouseholdWarning.signal_count: state.signal_count,
                HouseholdWarning.last_signal_at: now,
            }
        ).where(HouseholdWarning.id == wid)


async def _lock_households(household_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The households concerned, locked until commit: two batches cannot both open a warning for one."""
    query = (
        Household.select(
            Household.id, Household.community, Household.steward, Household.yearly_income, Household.level
        )
        .where(_among(Household.id, household_ids))
        .order_by(Household.id)
    )
    if db.is_postgres():
        query = query.lock_rows("UPDATE")
    return {row["id"]: row for row in await query}


async def _assignees(households: Sequence[Mapping[str, Any]]) -> dict[int, tuple[int | None, str]]:
    """Who verifies each household's warning: its steward, else the duty steward, else the supervisor."""
    community_ids = sorted({h["community"] for h in households})
    communities = {
        row["id"]: row
        for row in await Community.select(
            Community.id, Community.duty_steward, Community.street.supervisor.as_alias("supervisor")
        ).where(Community.id.is_in(community_ids))
    }
    candidates = {h["steward"] for h in households if h["steward"] is not None}
    for row in communities.values():
        candidates |= {u for u in (row["duty_steward"], row["supervisor"]) if u is not None}
    active = await _active_stewards(candidates)
    links: set[tuple[int, str]] = set()
    if candidates:
        rows = await UserLink.select(UserLink.user, UserLink.target).where(
            UserLink.user.is_in(sorted(candidates)) & (UserLink.kind == LinkKind.COMMUNITY.value)
        )
        links = {(row["user"], row["target"]) for row in rows}
    chosen: dict[int, tuple[int | None, str]] = {}
    for h in households:
        community = communities[h["community"]]
        ref = str(h["community"])
        if h["steward"] in active and (h["steward"], ref) in links:
            chosen[h["id"]] = (h["steward"], "household_steward")
        elif community["duty_steward"] in active and (community["duty_steward"], ref) in links:
            chosen[h["id"]] = (community["duty_steward"], "duty_steward")
        elif community["supervisor"] in active:
            chosen[h["id"]] = (community["supervisor"], "supervisor")
        else:
            chosen[h["id"]] = (None, "none")
    return chosen


async def _active_stewards(user_ids: set[int]) -> set[int]:
    if not user_ids:
        return set()
    rows = await User.select(User.id).where(
        User.id.is_in(sorted(user_ids)) & (User.role == Role.STEWARD.value) & (User.is_active == True)  # noqa: E712
    )
    return {row["id"] for row in rows}


# -- telling people ------------------------------------------------------------------------------


async def _names(household_ids: Sequence[int]) -> dict[int, str]:
    heads = await registry._heads(list(household_ids))
    return {hid: _masked_name(name) for hid, name in heads.items()}


def _masked_name(name: str) -> str:
    """``王秀英`` → ``王**``: enough for a steward to recognise, nothing for anyone else."""
    return name[:1] + "*" * max(1, len(name) - 1) if name else ""


async def notify_assigned(warning_ids: Sequence[int]) -> int:
    """Tell each warning's assignee at once (the dedupe key makes a second run reach nobody twice)."""
    from notifications.events import Event
    from notifications.services import notify

    rows = await HouseholdWarning.select(
        HouseholdWarning.id,
        HouseholdWarning.household,
        HouseholdWarning.assigned_to,
        HouseholdWarning.severity,
        HouseholdWarning.status,
        HouseholdWarning.community.name.as_alias("community_name"),
        HouseholdWarning.household.level.as_alias("level"),
    ).where(HouseholdWarning.id.is_in(list(warning_ids)))
    names = await _names([row["household"] for row in rows])
    kinds = await _latest_kinds([row["id"] for row in rows])
    sent = 0
    async with db.atomic():
        for row in rows:
            if row["assigned_to"] is None or row["status"] == "closed":
                continue
            context: dict[str, Any] = {
                "warning_no": number(row["id"]),
                "community": row["community_name"],
                "signal": KINDS[kinds[row["id"]]].label if row["id"] in kinds else "",
                "household": names.get(row["household"], ""),
                "link": f"/warnings/{row['id']}",
            }
            if row["level"] is not None:
                context["level"] = row["level"]
            sent += len(
                await notify(
                    Event.WARNING_ASSIGNED,
                    [row["assigned_to"]],
                    context,
                    dedupe_key=f"warning:{row['id']}:assigned:{row['assigned_to']}",
                    urgent=row["severity"] == "high",
                )
            )
    return sent


async def _latest_kinds(warning_ids: Sequence[int]) -> dict[int, str]:
    if not warning_ids:
        return {}
    rows = (
        await Signal.select(Signal.warning, Signal.kind)
        .where(Signal.warning.is_in(list(warning_ids)))
        .order_by(Signal.id)
    )
    return {row["warning"]: row["kind"] for row in rows}


async def escalate_overdue() -> int:
    """Escalate every warning not verified by its deadline to the street's supervisor; returns how many."""
    from notifications.events import Event
    from notifications.services import notify

    now = clock.now()
    rows = (
        await HouseholdWarning.select(HouseholdWarning.id)
        .where(
            (HouseholdWarning.status == "open")
            & HouseholdWarning.escalated_at.is_null()
            & (HouseholdWarning.deadline_at <= now)
        )
        .order_by(HouseholdWarning.deadline_at)
        .limit(ESCALATE_BATCH)
    )
    escalated = 0
    for row in rows:
        async with db.atomic():
            claimed = (
                await HouseholdWarning.update({HouseholdWarning.escalated_at: now})
                .where(
                    (HouseholdWarning.id == row["id"])
                    & HouseholdWarning.escalated_at.is_null()
                    & (HouseholdWarning.status == "open")
                )
                .returning(HouseholdWarning.id)
            )
            if not claimed:
                continue  # verified or escalated meanwhile
            warning = (
                await HouseholdWarning.select(
                    HouseholdWarning.id,
                    HouseholdWarning.deadline_at,
                    HouseholdWarning.assigned_to.display_name.as_alias("assignee"),
                    HouseholdWarning.community.name.as_alias("community_name"),
                    HouseholdWarning.community._.street._.supervisor.as_alias("supervisor"),
                )
                .where(HouseholdWarning.id == row["id"])
                .first()
            )
            assert warning is not None
            supervisor = warning["supervisor"]
            if supervisor is not None and not await _active_stewards({supervisor}):
                supervisor = None
            recipients = [supervisor] if supervisor is not None else await _admins()
            await HouseholdWarning.update({HouseholdWarning.escalated_to: supervisor}).where(
                HouseholdWarning.id == row["id"]
            )
            await WarningEvent.insert(
                WarningEvent(
                    warning=row["id"],
                    at=now,
                    kind="escalated",
                    detail={"to": supervisor, "admins": supervisor is None},
                )
            )
            if recipients:
                await notify(
                    Event.VERIFICATION_OVERDUE,
                    recipients,
                    {
                        "warning_no": number(row["id"]),
                        "community": warning["community_name"],
                        "steward": warning["assignee"] or "–",
                        "due_at": warning["deadline_at"],
                        "link": f"/warnings/{row['id']}",
                    },
                    dedupe_key=f"warning:{row['id']}:overdue",
                )
            escalated += 1
    if escalated:
        log.info("warnings escalated", extra={"count": escalated})
    return escalated


async def _admins() -> list[int]:
    rows = await User.select(User.id).where((User.role == Role.ADMIN.value) & (User.is_active == True))  # noqa: E712
    return [row["id"] for row in rows]


# -- signals by hand, by file, and the review of unmatched ones ------------------------------------


async def report_signal(p: Principal, data: Mapping[str, Any]) -> tuple[int, int | None]:
    """A steward reports a signal by hand; returns its id and the warning it opened or joined, if any.

    The household is named by its code (one of the steward's communities) or by a member's ID number.
    """
    if p.role not in (Role.STEWARD, Role.ADMIN) or p.user_id is None:
        raise NotFound()
    code = str(data.get("household_code") or "").strip()
    if code:
        household = (
            await Household.select(Household.id, Household.community)
            .where((Household.code == code) & Household.erased_at.is_null())
            .first()
        )
        if household is None or not registry.in_scope(p, household["community"]):
            raise ValidationFailed.field(
                "household_code", N_("No household with this code in your communities.")
            )
    kind = KINDS.get(str(data.get("kind") or ""))
    typed = {d.name: str(data.get(f"details.{d.name}") or "").strip() for d in (kind.details if kind else ())}
    item = {**data, "event_id": "", "details": {name: value for name, value in typed.items() if value}}
    [result] = await ingest([item], source="steward", sender="steward", principal=p, reported_by=p.user_id)
    if result.status != "accepted" or result.signal_id is None:
        raise ValidationFailed(errors=result.errors)
    row = await Signal.select(Signal.warning, Signal.household).where(Signal.id == result.signal_id).first()
    assert row is not None
    warning_id = row["warning"]
    if warning_id is not None:
        scope = await warning_scope(p)
        community = (
            await Household.select(Household.community).where(Household.id == row["household"]).first()
        )
        if scope is not None and (community is None or community["community"] not in scope):
            warning_id = None  # reported about someone outside the steward's reach: they learn nothing more
    return result.signal_id, warning_id


CSV_COLUMNS = {
    "event_id": ("event_id", "事件编号"),
    "kind": ("kind", "信号类型"),
    "occurred_on": ("occurred_on", "发生日期"),
    "id_number": ("id_number", "身份证号"),
    "household_code": ("household_code", "户编号"),
    "person_name": ("person_name", "姓名"),
    "community_code": ("community_code", "社区编码"),
    "note": ("note", "备注"),
}
DETAIL_COLUMNS = sorted({d.name for kind in KINDS.values() for d in kind.details})


def _decode(content: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValidationFailed.field(
        "file", N_("The file is not text in UTF-8 or GB18030; save it as CSV UTF-8.")
    )


def _column_names(header: list[str]) -> dict[int, str]:
    """Column position → signal field (``details.<name>`` for a figure), from the header row."""
    names: dict[int, str] = {}
    for n, raw in enumerate(header):
        title = raw.strip()
        for name, aliases in CSV_COLUMNS.items():
            if title in aliases:
                names[n] = name
        if title in DETAIL_COLUMNS:
            names[n] = f"details.{title}"
    if "kind" not in names.values():
        message = N_("The first row must name the columns; a column 'kind' is needed.")
        raise ValidationFailed.field("file", message)
    return names


def _csv_item(line: list[str], names: Mapping[int, str]) -> dict[str, Any]:
    item: dict[str, Any] = {"details": {}}
    for n, cell in enumerate(line):
        name = names.get(n)
        if name is not None and cell.strip():
            if name.startswith("details."):
                item["details"][name.removeprefix("details.")] = cell.strip()
            else:
                item[name] = cell.strip()
    return item


def read_csv(content: bytes) -> list[dict[str, Any]]:
    """The rows of an uploaded CSV file as signal items (columns in English or Chinese, figures by name)."""
    if not content:
        raise ValidationFailed.field("file", N_("Choose a CSV file to upload."))
    if len(content) > MAX_CSV_BYTES:
        raise ValidationFailed.field("file", N_("The file is larger than 5 MB; split it."))
    reader = csv.reader(io.StringIO(_decode(content)))
    names = _column_names(next(reader, []))
    rows = [_csv_item(line, names) for line in reader if any(cell.strip() for cell in line)]
    if len(rows) > MAX_CSV_ROWS:
        raise ValidationFailed.field("file", N_("A file holds at most 10,000 signals; split it."))
    if not rows:
        raise ValidationFailed.field("file", N_("The file has no signals below its header row."))
    return rows


@dataclass
class UploadReport:
    """What a CSV upload did, row by row (row 2 is the first below the header)."""

    accepted: int
    duplicate: int
    rejected: list[tuple[int, list[FieldError]]]


async def upload_csv(p: Principal, content: bytes) -> UploadReport:
    """An administrator loads signals from a file; a file loaded twice adds nothing the second time."""
    if not registry.is_admin(p):
        raise PermissionDenied()
    rows = read_csv(content)
    accepted = duplicate = 0
    rejected: list[tuple[int, list[FieldError]]] = []
    for start in range(0, len(rows), MAX_BATCH):
        results = await ingest(
            rows[start : start + MAX_BATCH], source="csv", sender="csv", principal=p, reported_by=p.user_id
        )
        for result in results:
            if result.status == "accepted":
                accepted += 1
            elif result.status == "duplicate":
                duplicate += 1
            else:
                rejected.append((start + result.index + 2, result.errors))
    return UploadReport(accepted=accepted, duplicate=duplicate, rejected=rejected)


def csv_template() -> bytes:
    header = [*CSV_COLUMNS, *DETAIL_COLUMNS]
    example = {
        "event_id": "HOSP-2025-000123",
        "kind": "hospital_bill",
        "occurred_on": "2025-03-01",
        "id_number": "",
        "household_code": "QX-YH-0001",
        "amount": "56000",
        "out_of_pocket_share": "0.45",
    }
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerow([example.get(h, "") for h in header])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


async def _review_scope(p: Principal) -> tuple[set[str] | None, set[int] | None]:
    """Community codes (None: all) whose unmatched signals a caller reviews, and the communities reached."""
    scope = await warning_scope(p)
    if scope is None:
        return None, None
    if not scope:
        return set(), scope
    rows = await Community.select(Community.code).where(Community.id.is_in(sorted(scope)))
    return {row["code"] for row in rows}, scope


async def unmatched(p: Principal, page: int = 1, per_page: int = PER_PAGE) -> Page:
    """Signals no household matched, newest first: all for admins, by community code for stewards."""
    codes, _ = await _review_scope(p)
    where: Any = Signal.status == "unmatched"
    if codes is not None:
        if not codes:
            return Page(items=[], page=1, per_page=per_page, total=0)
        where &= Signal.community_code.is_in(sorted(codes))
    query = (
        Signal.select(*_SIGNAL_COLUMNS)
        .where(where)
        .order_by(Signal.received_at, ascending=False)
        .order_by(Signal.id, ascending=False)
    )
    return await paginate(query, Signal.count().where(where), page, per_page)


_SIGNAL_COLUMNS = (
    Signal.id,
    Signal.source,
    Signal.kind,
    Signal.occurred_on,
    Signal.received_at,
    Signal.id_masked,
    Signal.person_name,
    Signal.household_code,
    Signal.community_code,
    Signal.details,
    Signal.note,
    Signal.status,
    Signal.matched_by,
    Signal.household,
    Signal.warning,
    Signal.rule,
    Signal.review_note,
)


async def signal_for_review(p: Principal, signal_id: int) -> dict[str, Any]:
    """One signal that waits for review, for a caller who reviews its community's signals."""
    codes, _ = await _review_scope(p)
    row = await Signal.select(*_SIGNAL_COLUMNS).where(Signal.id == signal_id).first()
    if (
        row is None
        or row["status"] != "unmatched"
        or (codes is not None and row["community_code"] not in codes)
    ):
        raise NotFound()
    row["details"] = _json(row["details"])
    community = await Community.select(Community.id).where(Community.code == row["community_code"]).first()
    row["community_id"] = community["id"] if community else None
    return row


async def match_signal(p: Principal, signal_id: int, *, household_code: str) -> int | None:
    """A reviewer names the household an unmatched signal is about; the rules then run as on arrival."""
    signal = await signal_for_review(p, signal_id)
    household = (
        await Household.select(Household.id, Household.community)
        .where((Household.code == household_code.strip()) & Household.erased_at.is_null())
        .first()
    )
    if household is None or not registry.in_scope(p, household["community"]):
        raise ValidationFailed.field("household_code", N_("No household with this code in your communities."))
    return await _attach(p, signal, household["id"], matched_by="review", note="")


async def _attach(
    p: Principal, signal: Mapping[str, Any], household_id: int, *, matched_by: str, note: str
) -> int | None:
    """Point a stored signal at a household and open or extend its warning; returns the warning id."""
    from households import tasks

    now = clock.now()
    async with db.atomic():
        households = await _lock_households([household_id])
        claimed = (
            await Signal.update(
                {
                    Signal.household: household_id,
                    Signal.status: "matched",
                    Signal.matched_by: matched_by,
                    Signal.reviewed_by: p.user_id,
                    Signal.review_note: note[:1000],
                }
            )
            .where((Signal.id == signal["id"]) & (Signal.status == "unmatched"))
            .returning(Signal.id)
        )
        if not claimed:
            raise Conflict()
        household = households[household_id]
        rules = await current_rules()
        facts = SignalFacts(signal["kind"], _json(signal["details"]), household["yearly_income"])
        outcome = evaluate(rules, facts)
        await audit.record(
            "signal.matched",
            principal=p,
            target_type="signal",
            target_id=signal["id"],
            household_id=household_id,
            how=matched_by,
        )
        if outcome is None:
            return None
        existing = (
            await HouseholdWarning.select()
            .where(
                (HouseholdWarning.household == household_id)
                & (HouseholdWarning.status != "closed")
                & (HouseholdWarning.opened_at >= now - timedelta(hours=rules.window_hours))
            )
            .order_by(HouseholdWarning.id, ascending=False)
            .first()
        )
        if existing is not None:
            state = merge(_state(existing), outcome, now)
            await _write_changes({existing["id"]: state}, now)
            await Signal.update({Signal.warning: existing["id"], Signal.rule: outcome.rule}).where(
                Signal.id == signal["id"]
            )
            await WarningEvent.insert(
                WarningEvent(
                    warning=existing["id"],
                    at=now,
                    actor=p.user_id,
                    kind="signal_added",
                    detail={"signals": 1},
                )
            )
            return int(existing["id"])
        assigned_to, via = (await _assignees([household]))[household_id]
        warning = HouseholdWarning(
            household=household_id,
            community=household["community"],
            first_signal=f"review:{signal['id']}",
            severity=outcome.severity,
            severity_rank=outcome.rank,
            rule=outcome.rule,
            opened_at=now,
            last_signal_at=now,
            deadline_at=now + timedelta(hours=outcome.deadline_hours),
            assigned_to=assigned_to,
            assigned_via=via,
            assigned_at=now if assigned_to is not None else None,
        )
        await HouseholdWarning.insert(warning)
        await Signal.update({Signal.warning: warning.id, Signal.rule: outcome.rule}).where(
            Signal.id == signal["id"]
        )
        await db.bulk_insert(
            WarningEvent,
            [
                _event(warning.id, "opened", now, p.user_id, {"signals": 1, "rule": outcome.rule}),
                _event(warning.id, "assigned", now, None, {"to": assigned_to, "via": via}),
            ],
        )
        if assigned_to is not None:
            await outbox.send(tasks.notify_assigned, [warning.id])
        return int(warning.id)


async def create_candidate(p: Principal, signal_id: int, data: Mapping[str, Any]) -> int:
    """Register the person of an unmatched signal as a candidate household (status ``candidate``).

    The ID number is decrypted here to become the member's (this is registration, not
    matching; audited).  The warning then opens on the candidate household as usual.
    """
    signal = await signal_for_review(p, signal_id)
    stored = await Signal.select(Signal.id_cipher).where(Signal.id == signal_id).first()
    if stored is None or not stored["id_cipher"]:
        raise ValidationFailed.field(
            "_form", N_("This signal has no ID number: match it to a household by its code.")
        )
    id_number = crypto.decrypt(stored["id_cipher"], SIGNAL_ID_CONTEXT)
    household: dict[str, Any] = {
        "code": str(data.get("code") or "").strip() or f"C-{signal_id:06d}",
        "community_id": data.get("community_id"),
        "address": data.get("address"),
        "phone": data.get("phone"),
        "category": "low_income_monitored",
        "groups": [],
        "status": "candidate",
    }
    member = {
        "name": str(data.get("name") or signal["person_name"] or "").strip(),
        "id_number": id_number,
        "relation": "head",
        "phone": data.get("member_phone") or "",
        "can_use_phone": data.get("can_use_phone") or "no",
    }
    async with db.atomic():
        try:
            household_id = await registry.create_household(p, household, [member])
        except ValidationFailed as exc:
            raise ValidationFailed(errors=[_candidate_field(e) for e in exc.errors]) from None
        await audit.record(
            "signal.candidate_created",
            principal=p,
            target_type="signal",
            target_id=signal_id,
            household_id=household_id,
        )
        await _attach(p, signal, household_id, matched_by="candidate", note="")
    return household_id


def _candidate_field(error: FieldError) -> FieldError:
    """A registry error named after the candidate form's field (the ID number is the signal's, not typed)."""
    name = {
        "members-0-phone": "member_phone",
        "members-0-name": "name",
        "members-0-can_use_phone": "can_use_phone",
    }.get(error.field, error.field)
    if name.startswith("members-0-"):
        name = "_form"
    return FieldError(name, error.message, error.params)


async def dismiss_signal(p: Principal, signal_id: int, *, reason: str) -> None:
    """A reviewer sets aside a signal that concerns nobody on the registry (moved away, wrong district)."""
    await signal_for_review(p, signal_id)
    if len(reason.strip()) < MIN_TEXT:
        raise ValidationFailed.field("reason", N_("Say why the signal is set aside."))
    async with db.atomic():
        done = (
            await Signal.update(
                {
                    Signal.status: "dismissed",
                    Signal.reviewed_by: p.user_id,
                    Signal.review_note: reason.strip()[:1000],
                }
            )
            .where((Signal.id == signal_id) & (Signal.status == "unmatched"))
            .returning(Signal.id)
        )
        if not done:
            raise Conflict()
        await audit.record("signal.dismissed", principal=p, target_type="signal", target_id=signal_id)


async def rematch(p: Principal) -> int:
    """Match the unmatched signals again (after households were registered); returns how many matched."""
    codes, _ = await _review_scope(p)
    where: Any = Signal.status == "unmatched"
    if codes is not None:
        if not codes:
            return 0
        where &= Signal.community_code.is_in(sorted(codes))
    rows = await Signal.select(
        Signal.id, Signal.kind, Signal.details, Signal.id_index, Signal.household_code
    ).where(where)
    if not rows:
        return 0
    members = {
        row["id_index"]: row["household"]
        for row in await Member.select(Member.id_index, Member.household).where(
            Member.id_index.is_in(sorted({r["id_index"] for r in rows if r["id_index"]}) or [""])
        )
    }
    by_code = {
        row["code"]: row["id"]
        for row in await Household.select(Household.id, Household.code).where(
            Household.code.is_in(sorted({r["household_code"] for r in rows if r["household_code"]}) or [""])
            & Household.erased_at.is_null()
        )
    }
    matched = 0
    for row in rows:
        household_id = members.get(row["id_index"]) or by_code.get(row["household_code"])
        if household_id is None:
            continue
        how = "id_number" if row["id_index"] in members else "household_code"
        try:
            await _attach(p, row, household_id, matched_by=how, note="")
        except Conflict:
            continue
        matched += 1
    return matched


# -- the queue and one warning ---------------------------------------------------------------------


@dataclass
class QueueFilters:
    status: str = ""  # "" means not closed
    severity: str = ""
    mine: bool = False
    overdue: bool = False


async def queue(p: Principal, filters: QueueFilters, page: int = 1, per_page: int = PER_PAGE) -> Page:
    """Warnings in the caller's reach, the most pressing first (by deadline, then severity)."""
    scope = await warning_scope(p)
    now = clock.now()
    where: Any = HouseholdWarning.id > 0
    if scope is not None:
        if not scope:
            return Page(items=[], page=1, per_page=per_page, total=0)
        where &= HouseholdWarning.community.is_in(sorted(scope))
    if filters.status in STATUSES:
        where &= HouseholdWarning.status == filters.status
    else:
        where &= HouseholdWarning.status != "closed"
    if filters.severity in SEVERITY_RANK:
        where &= HouseholdWarning.severity == filters.severity
    if filters.mine:
        where &= HouseholdWarning.assigned_to == p.user_id
    if filters.overdue:
        where &= (HouseholdWarning.status == "open") & (HouseholdWarning.deadline_at <= now)
    query = HouseholdWarning.select(
        HouseholdWarning.id,
        HouseholdWarning.household,
        HouseholdWarning.household.code.as_alias("household_code"),
        HouseholdWarning.household.level.as_alias("level"),
        HouseholdWarning.community.name.as_alias("community_name"),
        HouseholdWarning.severity,
        HouseholdWarning.status,
        HouseholdWarning.signal_count,
        HouseholdWarning.opened_at,
        HouseholdWarning.deadline_at,
        HouseholdWarning.assigned_to,
        HouseholdWarning.assigned_to.display_name.as_alias("assignee"),
        HouseholdWarning.escalated_at,
        HouseholdWarning.closed_at,
        HouseholdWarning.outcome,
    ).where(where)
    if filters.status == "closed":
        query = query.order_by(HouseholdWarning.closed_at, ascending=False)
    else:
        query = query.order_by(HouseholdWarning.deadline_at).order_by(HouseholdWarning.severity_rank)
    result = await paginate(
        query.order_by(HouseholdWarning.id), HouseholdWarning.count().where(where), page, per_page
    )
    names = await _names([row["household"] for row in result.items])
    kinds = await _latest_kinds([row["id"] for row in result.items])
    for row in result.items:
        row["number"] = number(row["id"])
        row["overdue"] = row["status"] == "open" and row["deadline_at"] <= now
        row["head"] = names.get(row["household"], "")
        row["kind"] = kinds.get(row["id"], "")
    return result


async def warning_detail(p: Principal, warning_id: int) -> dict[str, Any]:
    """A warning with its signals, household, timeline, visit and outcome (the read is audited)."""
    warning = await _warning_row(p, warning_id)
    household = (
        await Household.select(
            Household.id,
            Household.code,
            Household.address,
            Household.phone,
            Household.level,
            Household.category,
            Household.status,
            Household.yearly_income,
            Household.steward,
            Household.community.name.as_alias("community_name"),
            Household.community._.street._.name.as_alias("street_name"),
        )
        .where(Household.id == warning["household"])
        .first()
    )
    members = (
        await Member.select(Member.name, Member.relation, Member.phone, Member.id_masked)
        .where(Member.household == warning["household"])
        .order_by(Member.id)
    )
    signals = await Signal.select(*_SIGNAL_COLUMNS).where(Signal.warning == warning_id).order_by(Signal.id)
    for signal in signals:
        signal["details"] = _json(signal["details"])
    events = (
        await WarningEvent.select(
            *WarningEvent.all_columns(), WarningEvent.actor.display_name.as_alias("actor_name")
        )
        .where(WarningEvent.warning == warning_id)
        .order_by(WarningEvent.id)
    )
    for event in events:
        event["detail"] = _json(event["detail"])
    verification = (
        await Verification.select(
            *Verification.all_columns(), Verification.visited_by.display_name.as_alias("visitor")
        )
        .where(Verification.warning == warning_id)
        .first()
    )
    if verification is not None:
        verification["needs"] = _json(verification["needs"])
    photos = (
        await VerificationPhoto.select(VerificationPhoto.id, VerificationPhoto.content_type)
        .where(VerificationPhoto.warning == warning_id)
        .order_by(VerificationPhoto.id)
    )
    mentioned = {warning["assigned_to"], warning["escalated_to"], warning["closed_by"]}
    mentioned |= {e["detail"].get("to") for e in events if isinstance(e["detail"].get("to"), int)}
    people = await User.select(User.id, User.display_name).where(
        User.id.is_in(sorted(u for u in mentioned if u) or [0])
    )
    names = {row["id"]: row["display_name"] for row in people}
    await audit.record(
        "warning.read",
        principal=p,
        target_type="warning",
        target_id=warning_id,
        household_id=warning["household"],
    )
    warning = dict(warning)
    warning["outcome_detail"] = _json(warning["outcome_detail"])
    warning["number"] = number(warning_id)
    warning["overdue"] = warning["status"] == "open" and warning["deadline_at"] <= clock.now()
    return {
        "warning": warning,
        "household": household,
        "members": members,
        "signals": signals,
        "events": events,
        "verification": verification,
        "photos": photos,
        "names": names,
        "can_act": warning["status"] != "closed"
        and (registry.is_admin(p) or registry.in_scope(p, warning["community"])),
        "stewards": await registry.stewards_of(warning["community"]),
    }


async def household_warnings(p: Principal, household_id: int) -> list[dict[str, Any]]:
    """The warnings of one household (for its page), newest first."""
    await registry.staff_household(p, household_id)
    rows = (
        await HouseholdWarning.select(
            HouseholdWarning.id,
            HouseholdWarning.severity,
            HouseholdWarning.status,
            HouseholdWarning.opened_at,
            HouseholdWarning.deadline_at,
            HouseholdWarning.outcome,
            HouseholdWarning.signal_count,
        )
        .where(HouseholdWarning.household == household_id)
        .order_by(HouseholdWarning.id, ascending=False)
    )
    for row in rows:
        row["number"] = number(row["id"])
    return rows


async def reassign(p: Principal, warning_id: int, *, user_id: Any) -> None:
    """Give a warning to another steward of its community (a supervisor's or admin's usual move)."""
    warning = await _warning_row(p, warning_id)
    if warning["status"] == "closed":
        raise Conflict(N_("This warning is closed."))
    try:
        target = int(str(user_id))
    except ValueError:
        target = 0
    if target not in {sid for sid, _ in await registry.stewards_of(warning["community"])}:
        raise ValidationFailed.field("user_id", N_("Choose a steward of this household's community."))
    from households import tasks

    now = clock.now()
    async with db.atomic():
        await HouseholdWarning.update(
            {
                HouseholdWarning.assigned_to: target,
                HouseholdWarning.assigned_via: "reassigned",
                HouseholdWarning.assigned_at: now,
            }
        ).where(HouseholdWarning.id == warning_id)
        await WarningEvent.insert(
            WarningEvent(
                warning=warning_id,
                at=now,
                actor=p.user_id,
                kind="assigned",
                detail={"to": target, "via": "reassigned"},
            )
        )
        await outbox.send(tasks.notify_assigned, [warning_id])
        await audit.record(
            "warning.reassigned", principal=p, target_type="warning", target_id=warning_id, to=target
        )


def _acting(p: Principal, warning: Mapping[str, Any]) -> None:
    """Visits and decisions are for stewards of the community (or admins), on warnings still open."""
    if not (registry.is_admin(p) or registry.in_scope(p, warning["community"])):
        raise PermissionDenied(
            N_("Only a steward of this household's community can verify and handle its warning.")
        )
    if warning["status"] == "closed":
        raise Conflict(N_("This warning is closed."))


# -- verification ----------------------------------------------------------------------------------


@dataclass
class Photo:
    """An uploaded photo as received: its bytes and the name the browser gave."""

    content: bytes
    filename: str = ""


def photo_type(content: bytes) -> str | None:
    """The image type by the file's first bytes (what the browser claims is not trusted)."""
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None


def photo_dir() -> Path:
    return get_settings().var_dir / "verification-photos"


@dataclass
class VisitFields:
    visited_on: date
    met: str
    findings: str
    needs: list[str]


def visit_fields(
    data: Mapping[str, Any], *, today: date, opened: date, known_needs: set[str], errors: list[FieldError]
) -> VisitFields:
    """Check what a steward wrote about a visit; adds to ``errors`` (plain, no database)."""
    try:
        visited_on = parse_date(data.get("visited_on"))
    except ValueError:
        visited_on = None
    if visited_on is None or visited_on > today or visited_on < opened - timedelta(days=7):
        errors.append(FieldError("visited_on", N_("Enter the day of the visit (not in the future).")))
    met = str(data.get("met") or "").strip()
    if not met:
        message = N_("Say whom you met (e.g. the head of household and his daughter).")
        errors.append(FieldError("met", message))
    findings = str(data.get("findings") or "").strip()
    if len(findings) < MIN_TEXT:
        errors.append(FieldError("findings", N_("Write what you found.")))
    raw_needs = data.get("needs") or []
    needs = sorted({str(n) for n in ([raw_needs] if isinstance(raw_needs, str) else raw_needs) if n})
    if any(n not in known_needs for n in needs):
        errors.append(FieldError("needs", N_("Choose needs from the list.")))
    return VisitFields(visited_on or today, met[:100], findings[:4000], needs)


def checked_photos(
    photos: Sequence[Photo], *, existing: int, errors: list[FieldError]
) -> list[tuple[bytes, str]]:
    """The photos to keep, with their type; too large, not a picture or too many adds to ``errors``."""
    kept: list[tuple[bytes, str]] = []
    for photo in photos:
        if not photo.content:
            continue
        kind = photo_type(photo.content)
        if len(photo.content) > MAX_PHOTO_BYTES:
            errors.append(FieldError("photos", N_("Each photo must be at most 5 MB.")))
        elif kind is None:
            errors.append(FieldError("photos", N_("Photos must be JPEG, PNG or WebP pictures.")))
        else:
            kept.append((photo.content, kind))
    if existing + len(kept) > MAX_PHOTOS:
        errors.append(FieldError("photos", N_("At most %(n)s photos per warning."), {"n": MAX_PHOTOS}))
    return kept


async def record_visit(
    p: Principal, warning_id: int, data: Mapping[str, Any], photos: Sequence[Photo] = ()
) -> None:
    """The steward records the home visit: when, who was met, what was found, what is needed, photos."""
    warning = await _warning_row(p, warning_id)
    _acting(p, warning)
    errors: list[FieldError] = []
    opened = warning["opened_at"].astimezone(clock.local_zone()).date()
    known_needs = set(OTHER_NEEDS) | set(await service_labels())
    fields = visit_fields(
        data, today=clock.local_now().date(), opened=opened, known_needs=known_needs, errors=errors
    )
    existing = await VerificationPhoto.count().where(VerificationPhoto.warning == warning_id)
    kept = checked_photos(photos, existing=existing, errors=errors)
    if errors:
        raise ValidationFailed(errors=errors)
    written: list[Path] = []
    try:
        async with db.atomic():
            await _save_visit(p, warning, fields, kept, written)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


async def _save_visit(
    p: Principal,
    warning: Mapping[str, Any],
    fields: VisitFields,
    kept: list[tuple[bytes, str]],
    written: list[Path],
) -> None:
    """Write the visit, its photos (to disk, each path noted in ``written``) and the warning's new status."""
    now = clock.now()
    warning_id = warning["id"]
    values: dict[Any, Any] = {
        Verification.visited_on: fields.visited_on,
        Verification.visited_by: p.user_id,
        Verification.met: fields.met,
        Verification.findings: fields.findings,
        Verification.needs: fields.needs,
        Verification.recorded_at: now,
    }
    updated = (
        await Verification.update(values).where(Verification.warning == warning_id).returning(Verification.id)
    )
    if not updated:
        await Verification.insert(
            Verification(warning=warning_id, **{column._meta.name: value for column, value in values.items()})
        )
    for content, kind in kept:
        name = f"{warning_id}-{secrets.token_hex(16)}{PHOTO_TYPES[kind]}"
        path = photo_dir() / name
        path.parent.mkdir(parents=True, exist_ok=True)
        written.append(path)
        path.write_bytes(content)
        path.chmod(0o600)
        await VerificationPhoto.insert(
            VerificationPhoto(
                warning=warning_id,
                stored_name=name,
                content_type=kind,
                size=len(content),
                uploaded_by=p.user_id,
            )
        )
    await HouseholdWarning.update(
        {HouseholdWarning.status: "verified", HouseholdWarning.verified_at: warning["verified_at"] or now}
    ).where(HouseholdWarning.id == warning_id)
    detail = {"photos": len(kept), "needs": fields.needs, "first": warning["verified_at"] is None}
    await WarningEvent.insert(
        WarningEvent(warning=warning_id, at=now, actor=p.user_id, kind="verified", detail=detail)
    )
    await audit.record("warning.verified", principal=p, target_type="warning", target_id=warning_id)


async def photo(p: Principal, warning_id: int, photo_id: int) -> tuple[Path, str]:
    """A visit photo's file and type, for a caller who reaches the warning (the read is audited)."""
    await _warning_row(p, warning_id)
    row = (
        await VerificationPhoto.select()
        .where((VerificationPhoto.id == photo_id) & (VerificationPhoto.warning == warning_id))
        .first()
    )
    if row is None:
        raise NotFound()
    path = photo_dir() / row["stored_name"]
    if not path.is_file():
        raise NotFound()
    await audit.record(
        "warning.photo_read", principal=p, target_type="warning", target_id=warning_id, photo=photo_id
    )
    return path, row["content_type"]


# -- handling --------------------------------------------------------------------------------------


def _day(
    raw: Any, name: str, errors: list[FieldError], *, low: date, high: date, message: str
) -> date | None:
    try:
        day = parse_date(raw)
    except ValueError:
        day = None
    if day is None or not low <= day <= high:
        errors.append(FieldError(name, message))
        return None
    return day


def _int(raw: Any) -> int:
    try:
        return int(str(raw).strip())
    except ValueError:
        return 0


def _choices(raw: Any) -> list[str]:
    return sorted({str(c) for c in ([raw] if isinstance(raw, str) else (raw or [])) if c})


def _level_detail(
    data: Mapping[str, Any], today: date, errors: list[FieldError], services: set[str]
) -> dict[str, Any]:
    level = _int(data.get("level"))
    if level not in levels.LEVELS:
        errors.append(FieldError("level", N_("Choose level 1, 2 or 3.")))
    last = today + timedelta(days=registry.MAX_OVERRIDE_DAYS)
    until = _day(
        data.get("until"),
        "until",
        errors,
        low=today,
        high=last,
        message=N_("Choose a day from today to one year ahead."),
    )
    return {"level": level, "until": until.isoformat() if until else None}


def _credits_detail(
    data: Mapping[str, Any], today: date, errors: list[FieldError], services: set[str]
) -> dict[str, Any]:
    credits = _int(data.get("credits"))
    if not 1 <= credits <= MAX_CREDITS:
        errors.append(FieldError("credits", N_("Enter a number of credits from 1 to 1,000.")))
    last = today + timedelta(days=MAX_CREDIT_DAYS)
    until = _day(
        data.get("valid_until"),
        "valid_until",
        errors,
        low=today,
        high=last,
        message=N_("Choose a day from today to three months ahead."),
    )
    return {"credits": credits, "valid_until": until.isoformat() if until else None}


def _booking_detail(
    data: Mapping[str, Any], today: date, errors: list[FieldError], services: set[str]
) -> dict[str, Any]:
    categories = _choices(data.get("categories"))
    if not categories or any(c not in services for c in categories):
        errors.append(FieldError("categories", N_("Choose at least one service.")))
    wanted = _day(
        data.get("wanted_on"),
        "wanted_on",
        errors,
        low=today,
        high=today + timedelta(days=30),
        message=N_("Choose a day from today to 30 days ahead."),
    )
    return {"categories": categories, "wanted_on": wanted.isoformat() if wanted else None}


def _referral_detail(
    data: Mapping[str, Any], today: date, errors: list[FieldError], services: set[str]
) -> dict[str, Any]:
    programme = str(data.get("programme") or "").strip()
    if len(programme) < 2:
        errors.append(FieldError("programme", N_("Name the programme the household is referred to.")))
    return {"programme": programme[:200]}


_DETAILS = {
    "change_level": _level_detail,
    "grant_credits": _credits_detail,
    "book_services": _booking_detail,
    "referral": _referral_detail,
}


def handling_decision(
    outcome: str, data: Mapping[str, Any], *, today: date, services: set[str]
) -> dict[str, Any]:
    """Check a handling decision's fields; returns the detail to store (plain, no database)."""
    if outcome not in OUTCOMES:
        raise ValidationFailed.field("outcome", N_("Choose what is done."))
    errors: list[FieldError] = []
    note = str(data.get("note") or "").strip()
    detail: dict[str, Any] = {"note": note[:2000]}
    if outcome in _DETAILS:
        detail.update(_DETAILS[outcome](data, today, errors, services))
    if len(note) < MIN_TEXT:
        errors.append(FieldError("note", N_("Write why, in a sentence: it goes to the record.")))
    if errors:
        raise ValidationFailed(errors=errors)
    return detail


async def handle(p: Principal, warning_id: int, data: Mapping[str, Any]) -> None:
    """The steward decides what is done after the visit; the warning closes with that outcome.

    A new level goes through the registry's override (history and level-change events as
    always); temporary credits and services booked now are recorded here and passed on to the
    orders package by the ``hand_off`` actor.
    """
    warning = await _warning_row(p, warning_id)
    _acting(p, warning)
    if warning["status"] != "verified":
        raise Conflict(N_("Record the home visit first; then decide what is done."))
    outcome = str(data.get("outcome") or "")
    services = set(await service_labels(active_only=True))
    detail = handling_decision(outcome, data, today=clock.local_now().date(), services=services)
    from households import tasks

    now = clock.now()
    async with db.atomic():
        closed = (
            await HouseholdWarning.update(
                {
                    HouseholdWarning.status: "closed",
                    HouseholdWarning.closed_at: now,
                    HouseholdWarning.closed_by: p.user_id,
                    HouseholdWarning.outcome: outcome,
                    HouseholdWarning.outcome_detail: detail,
                    HouseholdWarning.handoff_state: "pending"
                    if outcome in ("grant_credits", "book_services")
                    else "none",
                }
            )
            .where((HouseholdWarning.id == warning_id) & (HouseholdWarning.status == "verified"))
            .returning(HouseholdWarning.id)
        )
        if not closed:
            raise Conflict()
        if outcome == "change_level":
            await registry.override_level(
                p,
                warning["household"],
                level=detail["level"],
                until=detail["until"],
                reason=gettext(N_("Warning %(no)s: %(note)s"), no=number(warning_id), note=detail["note"]),
            )
        await WarningEvent.insert(
            WarningEvent(
                warning=warning_id, at=now, actor=p.user_id, kind="closed", detail={"outcome": outcome}
            )
        )
        if outcome in ("grant_credits", "book_services"):
            await outbox.send(tasks.hand_off, warning_id)
        await audit.record(
            "warning.handled", principal=p, target_type="warning", target_id=warning_id, outcome=outcome
        )


async def hand_off(warning_id: int) -> str:
    """Pass a decision on temporary credits or services to the orders package; returns the state reached."""
    warning = await HouseholdWarning.select().where(HouseholdWarning.id == warning_id).first()
    if warning is None or warning["handoff_state"] in ("none", "done"):
        return warning["handoff_state"] if warning else "none"
    detail = _json(warning["outcome_detail"])
    reference: str | None
    if warning["outcome"] == "grant_credits":
        reference = await handoffs.grant_temporary_credits(
            handoffs.CreditGrant(
                warning_id=warning_id,
                household_id=warning["household"],
                credits=int(detail["credits"]),
                valid_until=date.fromisoformat(detail["valid_until"]),
                reason=detail["note"],
                granted_by=warning["closed_by"],
            )
        )
    else:
        reference = await handoffs.book_services_now(
            handoffs.ServiceBooking(
                warning_id=warning_id,
                household_id=warning["household"],
                categories=tuple(detail["categories"]),
                wanted_on=date.fromisoformat(detail["wanted_on"]),
                note=detail["note"],
                booked_by=warning["closed_by"],
            )
        )
    state = "not_available" if reference is None else "done"
    async with db.atomic():
        await HouseholdWarning.update(
            {HouseholdWarning.handoff_state: state, HouseholdWarning.handoff_ref: (reference or "")[:100]}
        ).where(HouseholdWarning.id == warning_id)
        await WarningEvent.insert(
            WarningEvent(
                warning=warning_id, kind="handed_off", detail={"state": state, "reference": reference or ""}
            )
        )
    if reference is None:
        log.warning(
            "handling outcome recorded but not carried out: no service provides it",
            extra={"warning_id": warning_id, "outcome": warning["outcome"]},
        )
    return state


# -- administration: overview, duty stewards, supervisors -------------------------------------------


async def overview(p: Principal) -> dict[str, Any]:
    """The administrator's figures: open, overdue, closed this month, median time to verify; by street."""
    if not registry.is_admin(p):
        raise PermissionDenied()
    now = clock.now()
    month_start = clock.local_now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    open_rows = await HouseholdWarning.select(
        HouseholdWarning.status,
        HouseholdWarning.deadline_at,
        HouseholdWarning.assigned_to,
        HouseholdWarning.community._.street._.name.as_alias("street"),
    ).where(HouseholdWarning.status != "closed")
    verified = await HouseholdWarning.select(HouseholdWarning.opened_at, HouseholdWarning.verified_at).where(
        HouseholdWarning.verified_at >= now - timedelta(days=30)
    )
    closed_this_month = await HouseholdWarning.count().where(HouseholdWarning.closed_at >= month_start)
    by_street: dict[str, dict[str, int]] = {}
    for row in open_rows:
        counts = by_street.setdefault(row["street"], {"open": 0, "overdue": 0})
        counts["open"] += 1
        counts["overdue"] += int(row["status"] == "open" and row["deadline_at"] <= now)
    outcomes = await HouseholdWarning.select(HouseholdWarning.outcome).where(
        HouseholdWarning.closed_at >= month_start
    )
    by_outcome: dict[str, int] = {}
    for row in outcomes:
        by_outcome[row["outcome"]] = by_outcome.get(row["outcome"], 0) + 1
    return {
        "open": len(open_rows),
        "overdue": sum(1 for r in open_rows if r["status"] == "open" and r["deadline_at"] <= now),
        "unassigned": sum(1 for r in open_rows if r["assigned_to"] is None),
        "closed_this_month": closed_this_month,
        "median_hours_to_verify": median_hours([r["verified_at"] - r["opened_at"] for r in verified]),
        "verified_last_30_days": len(verified),
        "unmatched": await Signal.count().where(Signal.status == "unmatched"),
        "by_street": sorted(by_street.items()),
        "by_outcome": sorted(by_outcome.items()),
        "not_carried_out": await HouseholdWarning.count().where(
            HouseholdWarning.handoff_state == "not_available"
        ),
    }


async def duty_page(p: Principal) -> dict[str, Any]:
    """Each street with its supervisor and each community with its duty steward and stewards."""
    if not registry.is_admin(p):
        raise PermissionDenied()
    streets = await Street.select(Street.id, Street.name, Street.code, Street.supervisor).order_by(
        Street.code
    )
    communities = await Community.select(
        Community.id, Community.name, Community.street, Community.duty_steward
    ).order_by(Community.code)
    stewards = (
        await User.select(User.id, User.display_name)
        .where(
            (User.role == Role.STEWARD.value) & (User.is_active == True)  # noqa: E712
        )
        .order_by(User.display_name)
    )
    links = await UserLink.select(UserLink.user, UserLink.target).where(
        UserLink.kind == LinkKind.COMMUNITY.value
    )
    of_community: dict[int, list[int]] = {}
    for link in links:
        if link["target"].isdigit():
            of_community.setdefault(int(link["target"]), []).append(link["user"])
    names = {row["id"]: row["display_name"] for row in stewards}
    for community in communities:
        community["stewards"] = [
            (uid, names[uid]) for uid in sorted(of_community.get(community["id"], [])) if uid in names
        ]
    for street in streets:
        street["communities"] = [c for c in communities if c["street"] == street["id"]]
    return {"streets": streets, "stewards": [(row["id"], row["display_name"]) for row in stewards]}


async def set_supervisor(p: Principal, street_id: int, user_id: Any) -> None:
    """An administrator names the steward of a street office to whom overdue warnings go (or nobody)."""
    if not registry.is_admin(p):
        raise PermissionDenied()
    target = await _steward_or_none(user_id, "supervisor")
    async with db.atomic():
        done = (
            await Street.update({Street.supervisor: target})
            .where(Street.id == street_id)
            .returning(Street.id)
        )
        if not done:
            raise NotFound()
        await audit.record(
            "street.supervisor_set", principal=p, target_type="street", target_id=street_id, to=target
        )


async def set_duty_steward(p: Principal, community_id: int, user_id: Any) -> None:
    """An administrator names the community's duty steward, who takes warnings of households without one."""
    if not registry.is_admin(p):
        raise PermissionDenied()
    target = await _steward_or_none(user_id, "duty_steward")
    if target is not None and target not in await accounts.linked_users(LinkKind.COMMUNITY, community_id):
        raise ValidationFailed.field("duty_steward", N_("Choose a steward of this community."))
    async with db.atomic():
        done = (
            await Community.update({Community.duty_steward: target})
            .where(Community.id == community_id)
            .returning(Community.id)
        )
        if not done:
            raise NotFound()
        await audit.record(
            "community.duty_steward_set",
            principal=p,
            target_type="community",
            target_id=community_id,
            to=target,
        )


async def _steward_or_none(raw: Any, field_name: str) -> int | None:
    text = str(raw or "").strip()
    if not text:
        return None
    try:
        user_id = int(text)
    except ValueError:
        user_id = 0
    if not await _active_stewards({user_id}):
        raise ValidationFailed.field(field_name, N_("Choose an active steward."))
    return user_id


async def service_labels(*, active_only: bool = False) -> dict[str, str]:
    """The catalog's service categories, code → name in the reader's language (bookable when active)."""
    from marketplace import catalog_services

    zh = current_locale.get().startswith("zh")
    rows = await catalog_services.all_categories(active_only=active_only)
    return {row["code"]: row["name_zh"] if zh else row["name_en"] for row in rows}


async def page_labels() -> dict[str, dict[str, str]]:
    """:func:`labels` with the catalog's services, and the needs a visit may find (services first)."""
    found = labels()
    services = await service_labels()
    found["services"] = services
    found["needs"] = {**services, **found["needs"]}
    return found


def labels() -> dict[str, dict[str, str]]:
    """Code → label of the coded values the warning pages show, in the reader's language."""
    return {
        "kinds": {code: gettext(kind.label) for code, kind in KINDS.items()},
        "severities": {code: gettext(label) for code, label in _severity_labels().items()},
        "statuses": {code: gettext(label) for code, label in STATUSES.items()},
        "outcomes": {code: gettext(label) for code, label in OUTCOMES.items()},
        "needs": {code: gettext(label) for code, label in OTHER_NEEDS.items()},
        "events": {code: gettext(label) for code, label in EVENT_KINDS.items()},
        "sources": {code: gettext(label) for code, label in SOURCES.items()},
        "assigned_via": {code: gettext(label) for code, label in ASSIGNED_VIA.items()},
        "details": {d.name: gettext(d.label) for kind in KINDS.values() for d in kind.details},
    }


def _severity_labels() -> dict[str, str]:
    from households.signals import SEVERITIES

    return SEVERITIES
