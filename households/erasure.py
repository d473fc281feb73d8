"""Erasing a household's personal data everywhere it went, keeping its history under a pseudonym.

The personal values (names, ID numbers and their ciphertexts, phones, the address, health notes,
birth dates) are collected first; then every row that refers to the household, its members or
their accounts is rewritten with those values replaced (names by pseudonyms, the rest by
``***``), here for this package's tables and, through :func:`households.events.on_household_erased`,
by the packages that keep copies (orders).  Rows that exist only to reach a person (activation
challenges, texts and inbox messages to their phone or account) are deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from piccolo.table import Table

from households.events import Erasure, erasure_subscribers
from households.services import HEALTH_CONTEXT, ID_CONTEXT
from households.tables import (
    ActivationChallenge,
    Consent,
    Household,
    HouseholdEvent,
    HouseholdWarning,
    ImportRow,
    Member,
    Signal,
    Verification,
    WarningEvent,
)
from marketplace import accounts, crypto
from marketplace.auth import LinkKind, Role
from marketplace.tables import AuditEvent, User, UserLink


async def scrub_rows(table: type[Table], where: Any, columns: Iterable[Any], erasure: Erasure) -> int:
    """Rewrite ``columns`` (text or JSON) of the rows matching ``where`` without the personal values."""
    columns = list(columns)
    rows = await table.select(table._meta.primary_key, *columns).where(where)
    changed = 0
    for row in rows:
        values = {column: erasure.scrub_json(row[column._meta.name]) for column in columns}
        values = {column: new for column, new in values.items() if new != row[column._meta.name]}
        if values:
            await table.update(values).where(table._meta.primary_key == row["id"])
            changed += 1
    return changed


async def collect(household: Mapping[str, Any], pseudonym: str) -> Erasure:
    """Every personal value held about the household, its members and their accounts."""
    household_id = household["id"]
    members = await Member.select().where(Member.household == household_id).order_by(Member.id)
    names: dict[str, str] = {}
    values: set[str] = {household["address"], household["phone"]}
    phones: set[str] = {household["phone"]}
    for n, member in enumerate(members, start=1):
        names[member["name"]] = f"{pseudonym}-{n}"
        phones.add(member["phone"])
        values.update([member["phone"], member["id_masked"]])
        for cipher, context in ((member["id_cipher"], ID_CONTEXT), (member["health_cipher"], HEALTH_CONTEXT)):
            if cipher:
                values.update([cipher, crypto.decrypt(cipher, context)])
        if member["birth_date"] is not None:
            values.add(member["birth_date"].isoformat())
    consents = await Consent.select(Consent.given_by).where(Consent.household == household_id)
    for consent in consents:
        names.setdefault(consent["given_by"], pseudonym)
    member_ids = [m["id"] for m in members]
    user_ids = set(await accounts.linked_users(LinkKind.HOUSEHOLD, household_id))
    if member_ids:
        rows = await UserLink.select(UserLink.user).where(
            (UserLink.kind == LinkKind.MEMBER.value) & UserLink.target.is_in([str(m) for m in member_ids])
        )
        user_ids |= {row["user"] for row in rows}
    users = await User.select(User.id, User.phone, User.display_name).where(
        User.id.is_in(sorted(user_ids) or [0]) & (User.role == Role.RESIDENT.value)
    )
    for n, user in enumerate(users, start=1):
        names.setdefault(user["display_name"], f"{pseudonym}-u{n}")
        phones.add(user["phone"])
        values.add(user["phone"])
    return Erasure(
        household_id=household_id,
        code=household["code"],
        pseudonym=pseudonym,
        member_ids=tuple(member_ids),
        user_ids=tuple(sorted(u["id"] for u in users)),
        phones=tuple(sorted(p for p in phones if p)),
        names={name: alias for name, alias in names.items() if name},
        values=tuple(sorted(v for v in values if v and len(v) >= 2)),
    )


async def erase(erasure: Erasure, now: datetime) -> None:
    """Rewrite every row of this package (and, through the subscribers, of others); in a transaction."""
    household_id = erasure.household_id
    for n, member_id in enumerate(erasure.member_ids, start=1):
        await Member.update(
            {
                Member.name: f"{erasure.pseudonym}-{n}",
                Member.id_cipher: None,
                Member.id_index: None,
                Member.id_masked: "",
                Member.birth_date: None,
                Member.sex: "",
                Member.phone: "",
                Member.disability_grade: None,
                Member.health_cipher: None,
                Member.updated_at: now,
            }
        ).where(Member.id == member_id)
    await Consent.update({Consent.given_by: erasure.pseudonym}).where(Consent.household == household_id)
    await scrub_rows(Consent, Consent.household == household_id, [Consent.scope], erasure)
    await Household.update(
        {
            Household.code: f"erased-{erasure.pseudonym}",
            Household.address: "",
            Household.phone: "",
            Household.latitude: None,
            Household.longitude: None,
            Household.status: "exited",
            Household.pseudonym: erasure.pseudonym,
            Household.erased_at: now,
            Household.updated_at: now,
        }
    ).where(Household.id == household_id)
    await scrub_rows(Household, Household.id == household_id, [Household.override_reason], erasure)
    # The old code is the civil-affairs database's key for the family: import rows and signals lose it.
    await ImportRow.update({ImportRow.household_code: f"erased-{erasure.pseudonym}"}).where(
        ImportRow.household_code == erasure.code
    )
    await Signal.update({Signal.household_code: f"erased-{erasure.pseudonym}"}).where(
        (Signal.household == household_id) | (Signal.household_code == erasure.code)
    )
    await scrub_rows(
        HouseholdEvent,
        HouseholdEvent.household == household_id,
        [HouseholdEvent.from_value, HouseholdEvent.to_value, HouseholdEvent.reason, HouseholdEvent.detail],
        erasure,
    )
    await _erase_monitoring(erasure)
    if erasure.phones:
        await ActivationChallenge.delete().where(ActivationChallenge.phone.is_in(list(erasure.phones)))
    await _erase_accounts(erasure)
    await _scrub_audit(erasure)
    from notifications.services import forget_person

    await forget_person(erasure.user_ids, erasure.phones, erasure.searched(), erasure.scrub_json)
    for subscriber in erasure_subscribers():
        await subscriber(erasure)


async def _erase_monitoring(erasure: Erasure) -> None:
    """Signals about the household (or carrying a member's ID number), its warnings and visits."""
    signals = Signal.household == erasure.household_id
    await Signal.update(
        {
            Signal.person_name: erasure.pseudonym,
            Signal.id_cipher: None,
            Signal.id_index: None,
            Signal.id_masked: "",
        }
    ).where(signals)
    await scrub_rows(Signal, signals, [Signal.details, Signal.note, Signal.review_note], erasure)
    warnings = [
        row["id"]
        for row in await HouseholdWarning.select(HouseholdWarning.id).where(
            HouseholdWarning.household == erasure.household_id
        )
    ]
    if not warnings:
        return
    await scrub_rows(
        HouseholdWarning, HouseholdWarning.id.is_in(warnings), [HouseholdWarning.outcome_detail], erasure
    )
    await scrub_rows(WarningEvent, WarningEvent.warning.is_in(warnings), [WarningEvent.detail], erasure)
    await scrub_rows(
        Verification, Verification.warning.is_in(warnings), [Verification.met, Verification.findings], erasure
    )


async def _erase_accounts(erasure: Erasure) -> None:
    """Residents' accounts of the household lose their links, name, phone and password."""
    for user_id in await accounts.linked_users(LinkKind.HOUSEHOLD, erasure.household_id):
        await accounts.unlink(user_id, LinkKind.HOUSEHOLD, erasure.household_id)
    for user_id in erasure.user_ids:
        for member_id in erasure.member_ids:
            await accounts.unlink(user_id, LinkKind.MEMBER, member_id)
        if await UserLink.exists().where(
            (UserLink.user == user_id) & (UserLink.kind == LinkKind.HOUSEHOLD.value)
        ):
            continue  # also acts for another household: that one still needs to reach them
        user = await User.select(User.display_name).where(User.id == user_id).first()
        alias = erasure.names.get(user["display_name"], erasure.pseudonym) if user else erasure.pseudonym
        await User.update(
            {User.display_name: alias, User.phone: f"erased-{user_id}", User.password_hash: None}
        ).where(User.id == user_id)


async def _scrub_audit(erasure: Erasure) -> None:
    """Audit rows about the household, its members, warnings and signals keep ids, not values."""
    warnings = await HouseholdWarning.select(HouseholdWarning.id).where(
        HouseholdWarning.household == erasure.household_id
    )
    signals = await Signal.select(Signal.id).where(Signal.household == erasure.household_id)
    targets = {
        "household": [erasure.household_id],
        "member": list(erasure.member_ids),
        "warning": [row["id"] for row in warnings],
        "signal": [row["id"] for row in signals],
    }
    for target_type, ids in targets.items():
        if ids:
            where = (AuditEvent.target_type == target_type) & AuditEvent.target_id.is_in(
                [str(i) for i in ids]
            )
            await scrub_rows(AuditEvent, where, [AuditEvent.detail], erasure)
