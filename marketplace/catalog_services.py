"""Use cases of the catalog and the level policies: reading the shelves, changing categories and policies.

Other packages ask here what a category costs a household of a level (:func:`cost_for`) and
what a level's terms are (:func:`current_policy`); the arithmetic lives in
``marketplace.catalog``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from marketplace import audit, clock, db
from marketplace.auth import Principal, Role
from marketplace.catalog import (
    NEED_LEVELS,
    CategoryFields,
    CostRules,
    Policy,
    PolicyTerms,
    credit_cost,
    current_version,
    validate_category,
    validate_terms,
)
from marketplace.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from marketplace.i18n import N_
from marketplace.pagination import Page, paginate
from marketplace.tables import Category, LevelPolicy, User

ICON_DIR = Path(__file__).resolve().parent / "static" / "icons"


def icons() -> list[str]:
    """The icon files an administrator may choose for a category."""
    return sorted(p.name for p in ICON_DIR.glob("*.svg"))


def category_public_id(code: str) -> uuid.UUID:
    """The fixed HSDS id of a category code (the seed migration uses the same rule)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"cloudmarket:category:{code}")


is_unique_violation = db.is_unique_violation  # its older home: callers import it from here too


def _ensure_admin(principal: Principal) -> None:
    if principal.role != Role.ADMIN:
        raise PermissionDenied()


def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, alike on SQLite and PostgreSQL.

    SQLite's LIKE has no escape character unless the query names one (Piccolo's cannot), and
    PostgreSQL's is a backslash, so nothing is escaped: ``_`` stays the one-character wildcard
    (it still matches an underscore, as in ``home_repair``), and ``%`` and ``\\`` become it.
    """
    return "%" + text.replace("%", "_").replace("\\", "_") + "%"


def contains(column: Any, text: str) -> Any:
    """A case-insensitive "contains" condition on either backend."""
    pattern = like_pattern(text)
    if db.is_postgres():
        return column.ilike(pattern)
    return column.like(pattern)  # SQLite's LIKE ignores ASCII case already


# -- categories --------------------------------------------------------------------------------------


async def list_categories(
    *, active: bool | None = None, search: str = "", page: int = 1, per_page: int = 50
) -> Page:
    """Categories in shelf order, filtered by state and by a word in either name or the code."""
    query = Category.select().order_by(Category.sort_order).order_by(Category.id)
    count = Category.count()
    conditions = []
    if active is not None:
        conditions.append(Category.is_active == active)
    if search.strip():
        word = search.strip()
        conditions.append(
            contains(Category.name_zh, word)
            | contains(Category.name_en, word)
            | contains(Category.code, word)
        )
    for condition in conditions:
        query = query.where(condition)
        count = count.where(condition)
    return await paginate(query, count, page, per_page)


async def all_categories(*, active_only: bool = True) -> list[dict[str, Any]]:
    query = Category.select().order_by(Category.sort_order).order_by(Category.id)
    if active_only:
        query = query.where(Category.is_active == True)  # noqa: E712 - a column condition, not a comparison
    return await query  # type: ignore[no-any-return]


async def get_category(category_id: int) -> dict[str, Any]:
    row = await Category.select().where(Category.id == category_id).first()
    if row is None:
        raise NotFound()
    return row  # type: ignore[no-any-return]


async def category_codes() -> set[str]:
    return {row["code"] for row in await Category.select(Category.code)}


def _category_values(fields: CategoryFields) -> dict[Any, Any]:
    return {
        Category.name_zh: fields.name_zh,
        Category.name_en: fields.name_en,
        Category.description_zh: fields.description_zh,
        Category.description_en: fields.description_en,
        Category.icon: fields.icon,
        Category.routing: fields.routing.value,
        Category.unit: fields.unit.value,
        Category.credit_cost: fields.credit_cost,
        Category.sort_order: fields.sort_order,
        Category.is_active: fields.is_active,
    }


async def create_category(principal: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """An administrator adds a category to the shelves."""
    _ensure_admin(principal)
    fields = validate_category(data, set(icons()))
    async with db.atomic():
        if await Category.exists().where(Category.code == fields.code):
            raise ValidationFailed.field("code", N_("A category with this code exists already."))
        values = {column._meta.name: value for column, value in _category_values(fields).items()}
        row = Category(public_id=category_public_id(fields.code), code=fields.code, **values)
        await row.save()
        await audit.record("category.created", principal=principal, target_type="category", target_id=row.id)
    return await get_category(row.id)


async def update_category(principal: Principal, category_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """An administrator changes a category; its code (and so its HSDS id) stays."""
    _ensure_admin(principal)
    current = await get_category(category_id)
    merged = {
        **{k: v for k, v in current.items() if k != "is_active"},
        "is_active": current["is_active"],
        **data,
    }
    fields = validate_category(merged, set(icons()), code_fixed=current["code"])
    async with db.atomic():
        values = _category_values(fields)
        changed = sorted(c._meta.name for c, v in values.items() if current[c._meta.name] != v)
        values[Category.updated_at] = clock.now()
        await Category.update(values).where(Category.id == category_id)
        await audit.record(
            "category.updated",
            principal=principal,
            target_type="category",
            target_id=category_id,
            fields=changed,
        )
    return await get_category(category_id)


# -- level policies ----------------------------------------------------------------------------------


def _policy(row: dict[str, Any]) -> Policy:
    return Policy(
        level=row["level"],
        version=row["version"],
        terms=PolicyTerms(
            monthly_credits=row["monthly_credits"],
            cost_rules=CostRules.from_json(row["cost_rules"]),
            accept_minutes=row["accept_minutes"],
            service_hours=row["service_hours"],
            offer_timeout_minutes=row["offer_timeout_minutes"],
            routing_priority=row["routing_priority"],
        ),
        effective_from=row["effective_from"],
        reason=row["reason"],
        changed_by=row["changed_by"],
    )


async def policy_versions(level: int | None = None) -> list[Policy]:
    """Every stored version, oldest first (of one level, or of all)."""
    query = LevelPolicy.select().order_by(LevelPolicy.level).order_by(LevelPolicy.version)
    if level is not None:
        query = query.where(LevelPolicy.level == level)
    return [_policy(row) for row in await query]


async def current_policies(at: datetime | None = None) -> dict[int, Policy]:
    """The policy in force for each level at ``at`` (now by default)."""
    at = at or clock.now()
    versions = await policy_versions()
    found: dict[int, Policy] = {}
    for level in NEED_LEVELS:
        policy = current_version([p for p in versions if p.level == level], at)
        if policy is not None:
            found[level] = policy
    return found


async def current_policy(level: int, at: datetime | None = None) -> Policy | None:
    """The terms a need level has at ``at``: credits, cost rules, targets, offer timeout, priority."""
    if level not in NEED_LEVELS:
        raise NotFound()
    return current_version(await policy_versions(level), at or clock.now())


async def scheduled_policies(at: datetime | None = None) -> list[Policy]:
    """Versions that take effect later than ``at``."""
    at = at or clock.now()
    return [p for p in await policy_versions() if p.effective_from > at]


async def policy_history(level: int, page: int = 1, per_page: int = 20) -> Page:
    """The versions of a level's policy, newest first, with who changed it and why."""
    if level not in NEED_LEVELS:
        raise NotFound()
    query = (
        LevelPolicy.select().where(LevelPolicy.level == level).order_by(LevelPolicy.version, ascending=False)
    )
    result = await paginate(query, LevelPolicy.count().where(LevelPolicy.level == level), page, per_page)
    user_ids = list({row["changed_by"] for row in result.items if row["changed_by"]})
    names = {}
    if user_ids:
        names = {
            u["id"]: u["display_name"]
            for u in await User.select(User.id, User.display_name).where(User.id.is_in(user_ids))
        }
    for row in result.items:
        row["rules"] = CostRules.from_json(row["cost_rules"]).as_dict()
        row["changed_by_name"] = names.get(row["changed_by"], "")
    return result


async def change_policy(
    principal: Principal,
    level: int,
    data: dict[str, Any],
    *,
    effective_from: datetime | None = None,
) -> Policy:
    """An administrator sets new terms for a level: a new version, now or from a later date.

    Earlier versions are kept as they were; two administrators saving at once get one
    version each or a Conflict, never a lost change.
    """
    _ensure_admin(principal)
    if level not in NEED_LEVELS:
        raise NotFound()
    terms = validate_terms(data, await category_codes())
    reason = str(data.get("reason") or "").strip()[:1000]
    if not reason:
        raise ValidationFailed.field("reason", N_("Write why the policy changes; it is kept in the history."))
    now = clock.now()
    starts = effective_from or now
    if starts.tzinfo is None:
        starts = starts.replace(tzinfo=clock.local_zone())
    if starts < now.replace(second=0, microsecond=0):
        raise ValidationFailed.field(
            "effective_from", N_("A change can take effect now or later, not in the past.")
        )
    try:
        async with db.atomic():
            latest = (
                await LevelPolicy.select(LevelPolicy.version)
                .where(LevelPolicy.level == level)
                .order_by(LevelPolicy.version, ascending=False)
                .first()
            )
            version = (latest["version"] if latest else 0) + 1
            await LevelPolicy.insert(
                LevelPolicy(
                    level=level,
                    version=version,
                    key=f"{level}:{version}",
                    monthly_credits=terms.monthly_credits,
                    cost_rules=terms.cost_rules.to_json(),
                    accept_minutes=terms.accept_minutes,
                    service_hours=terms.service_hours,
                    offer_timeout_minutes=terms.offer_timeout_minutes,
                    routing_priority=terms.routing_priority,
                    effective_from=starts,
                    reason=reason,
                    changed_by=principal.user_id,
                )
            )
            await audit.record(
                "level_policy.changed",
                principal=principal,
                target_type="level_policy",
                target_id=f"{level}:{version}",
                effective_from=starts.isoformat(),
            )
    except Exception as exc:
        if is_unique_violation(exc):
            raise Conflict() from exc
        raise
    return Policy(level, version, terms, starts, reason, principal.user_id)


# -- costs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LevelCost:
    """What one unit of a category costs a household of one level; None when not covered."""

    level: int
    credits: int | None


def cost_table(categories: list[dict[str, Any]], policies: dict[int, Policy]) -> dict[int, list[LevelCost]]:
    """For each category id, its cost at every level that has a policy."""
    return {
        category["id"]: [
            LevelCost(
                level,
                credit_cost(category["code"], category["credit_cost"], policies[level].terms.cost_rules),
            )
            for level in NEED_LEVELS
            if level in policies
        ]
        for category in categories
    }


async def cost_for(
    category_id: int, level: int, *, units: int = 1, standard_cost: int | None = None
) -> int | None:
    """Credits ``units`` of a category cost a household of ``level`` now; None when not covered.

    ``standard_cost`` replaces the category's standard cost when an offering asks less.
    """
    category = await get_category(category_id)
    policy = await current_policy(level)
    if policy is None:
        return None
    base = category["credit_cost"] if standard_cost is None else standard_cost
    return credit_cost(category["code"], base, policy.terms.cost_rules, units)
