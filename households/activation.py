"""Resident account activation: a member whose phone is on record sets a password with a one-time code.

There is no open self-registration.  A person types a phone number; the page answers the same
whatever the number, and writes the same rows: a challenge and a message to the
``send_activation_code`` actor.  The actor alone decides whether the number may activate an
account (a member of a live household has it, or a family account a steward created for it,
and no activated account holds it) and only then sends a code by SMS.  The code is stored as a
keyed hash, expires after a few minutes, allows a few tries, and requests are rate-limited per
phone and per address.  The right code, with a new password, creates or activates the resident
account and links it to the member and their household.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from households.tables import ActivationChallenge, HouseholdEvent, Member
from marketplace import accounts, audit, clock, crypto, db, logs, outbox, ratelimit
from marketplace.auth import LinkKind, Role
from marketplace.errors import DomainError, FieldError, ValidationFailed
from marketplace.i18n import N_
from marketplace.tables import User, UserLink

log = logging.getLogger("cloudmarket.households")

CODE_DIGITS = 6
CODE_MINUTES = 10
MAX_ATTEMPTS = 5
CODE_CONTEXT = "activation.code"
# Codes asked for: per phone 3 in 10 minutes and 10 a day; per address 20 in 10 minutes.
REQUESTS_PER_PHONE = (3, 600)
REQUESTS_PER_PHONE_DAY = (10, 86_400)
REQUESTS_PER_ADDRESS = (20, 600)
# Codes typed: per address 30 in 10 minutes (on top of the tries each code allows).
CHECKS_PER_ADDRESS = (30, 600)
KEEP_CHALLENGES = timedelta(days=1)


class ActivationFailed(DomainError):
    """The code cannot activate an account; the message says what to do, and never why not."""

    status = 422
    code = "activation_failed"
    default_message = N_("This code is not right or no longer valid. Ask for a new code and try again.")


def _hash(challenge_id: int, code: str) -> str:
    return crypto.blind_index(f"{challenge_id}:{code}", CODE_CONTEXT)


def _matches(challenge_id: int, code: str, stored: str | None) -> bool:
    if not stored:
        return False
    return any(
        hmac.compare_digest(candidate, stored)
        for candidate in crypto.blind_indexes(f"{challenge_id}:{code}", CODE_CONTEXT)
    )


# -- who may activate ------------------------------------------------------------------------------


@dataclass
class Eligible:
    """What an activation would create or activate, and link."""

    user_id: int | None
    name: str
    members: list[dict[str, int]] = field(default_factory=list)  # {"member": id, "household": id}
    households: set[int] = field(default_factory=set)


async def eligible(phone: str) -> Eligible | None:
    """Whom this phone may activate, or None (an activated, staff or blocked account holds it, or nobody)."""
    user = (
        await User.select(User.id, User.role, User.password_hash, User.is_active, User.display_name)
        .where(User.phone == phone)
        .first()
    )
    if user is not None and (
        user["password_hash"] or not user["is_active"] or user["role"] != Role.RESIDENT.value
    ):
        return None
    members = (
        await Member.select(Member.id, Member.household, Member.name)
        .where(
            (Member.phone == phone)
            & Member.household.erased_at.is_null()
            & (Member.household.status != "exited")
        )
        .order_by(Member.id)
    )
    households = {row["household"] for row in members}
    if user is not None:
        households |= {int(ref) for ref in await _linked(user["id"], LinkKind.HOUSEHOLD) if ref.isdigit()}
    if not households:
        return None
    name = user["display_name"] if user is not None else members[0]["name"]
    return Eligible(
        user_id=user["id"] if user is not None else None,
        name=name,
        members=[{"member": row["id"], "household": row["household"]} for row in members],
        households=households,
    )


async def _linked(user_id: int, kind: LinkKind) -> list[str]:
    rows = await UserLink.select(UserLink.target).where(
        (UserLink.user == user_id) & (UserLink.kind == kind.value)
    )
    return [row["target"] for row in rows]


# -- asking for a code -----------------------------------------------------------------------------


async def request_code(raw_phone: str) -> str:
    """Start an activation for a phone number; the same rows and answer whether it is known or not.

    Returns the normalised number.  Raises ValidationFailed for a malformed number and
    RateLimited when this phone or address asked too often.
    """
    phone = accounts.validate_phone(raw_phone)
    address = logs.client_ip.get() or "-"
    await ratelimit.check("activate-phone", phone, *REQUESTS_PER_PHONE)
    await ratelimit.check("activate-phone-day", phone, *REQUESTS_PER_PHONE_DAY)
    await ratelimit.check("activate-ip", address, *REQUESTS_PER_ADDRESS)
    from households import tasks

    now = clock.now()
    async with db.atomic():
        # A new code replaces any earlier one still open for this phone.
        await ActivationChallenge.update({ActivationChallenge.expires_at: now}).where(
            (ActivationChallenge.phone == phone)
            & ActivationChallenge.used_at.is_null()
            & (ActivationChallenge.expires_at > now)
        )
        challenge = ActivationChallenge(
            phone=phone, expires_at=now + timedelta(minutes=CODE_MINUTES), created_at=now
        )
        await ActivationChallenge.insert(challenge)
        await outbox.send(tasks.send_activation_code, challenge.id)
        await audit.record("account.activation_requested", target_type="activation", target_id=challenge.id)
    return phone


async def send_code(challenge_id: int) -> bool:
    """Send the code of one challenge if its phone may activate an account; safe to run twice."""
    from notifications.events import Event
    from notifications.services import notify

    now = clock.now()
    async with db.atomic():
        challenge = await ActivationChallenge.select().where(ActivationChallenge.id == challenge_id).first()
        if (
            challenge is None
            or challenge["code_hash"] is not None
            or challenge["used_at"] is not None
            or challenge["expires_at"] <= now
        ):
            return False
        if await eligible(challenge["phone"]) is None:
            log.info("activation not offered", extra={"activation_id": challenge_id})
            return False
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        claimed = (
            await ActivationChallenge.update(
                {ActivationChallenge.code_hash: _hash(challenge_id, code), ActivationChallenge.sent_at: now}
            )
            .where((ActivationChallenge.id == challenge_id) & ActivationChallenge.code_hash.is_null())
            .returning(ActivationChallenge.id)
        )
        if not claimed:
            return False
        await notify(
            Event.ACTIVATION_CODE,
            [challenge["phone"]],
            {"code": code, "minutes": CODE_MINUTES},
            dedupe_key=f"activation:{challenge_id}",
        )
    log.info("activation code sent", extra={"activation_id": challenge_id})
    return True


# -- typing the code -------------------------------------------------------------------------------


def _check_inputs(code: str, password: str, password_again: str) -> str:
    errors: list[FieldError] = []
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == CODE_DIGITS):
        errors.append(FieldError("code", N_("Enter the 6-digit code from the text message.")))
    try:
        accounts.validate_password(password)
    except ValidationFailed as exc:
        errors += exc.errors
    if password and password != password_again:
        errors.append(FieldError("password_again", N_("The two passwords are not the same.")))
    if errors:
        raise ValidationFailed(errors=errors)
    return code


async def activate(raw_phone: str, code: str, password: str, password_again: str) -> int:
    """Check the code; create or activate the resident account, set its password and link it.

    Returns the user id.  A wrong code uses up one try, whether the phone is known or not.
    """
    phone = accounts.normalise_phone(raw_phone)
    code = _check_inputs(code, password, password_again)
    await ratelimit.check("activate-check-ip", logs.client_ip.get() or "-", *CHECKS_PER_ADDRESS)
    now = clock.now()
    challenge = (
        await ActivationChallenge.select()
        .where((ActivationChallenge.phone == phone) & ActivationChallenge.used_at.is_null())
        .order_by(ActivationChallenge.id, ascending=False)
        .first()
    )
    if challenge is None:
        raise ActivationFailed()
    if challenge["expires_at"] <= now:
        await _failed(challenge["id"], "expired")
        raise ActivationFailed(N_("This code has expired. Ask for a new code."))
    # The try is counted in its own statement, committed even when the code is wrong.
    counted = (
        await ActivationChallenge.update({ActivationChallenge.attempts: ActivationChallenge.attempts + 1})
        .where((ActivationChallenge.id == challenge["id"]) & (ActivationChallenge.attempts < MAX_ATTEMPTS))
        .returning(ActivationChallenge.attempts)
    )
    if not counted:
        await _failed(challenge["id"], "too_many_attempts")
        raise ActivationFailed(N_("Too many wrong codes. Ask for a new code."))
    if not _matches(challenge["id"], code, challenge["code_hash"]):
        left = MAX_ATTEMPTS - counted[0]["attempts"]
        await _failed(challenge["id"], "wrong_code")
        if left <= 0:
            raise ActivationFailed(N_("Too many wrong codes. Ask for a new code."))
        raise ValidationFailed.field("code", N_("This code is not right. Tries left: %(n)s."), n=left)
    async with db.atomic():
        used = (
            await ActivationChallenge.update({ActivationChallenge.used_at: now})
            .where((ActivationChallenge.id == challenge["id"]) & ActivationChallenge.used_at.is_null())
            .returning(ActivationChallenge.id)
        )
        target = await eligible(phone) if used else None
        if target is None:
            raise ActivationFailed()
        user_id = await _create_or_activate(phone, target, password)
    log.info("account activated", extra={"user_id": user_id, "activation_id": challenge["id"]})
    return user_id


async def _create_or_activate(phone: str, target: Eligible, password: str) -> int:
    if target.user_id is None:
        user = await accounts.create_user(
            phone=phone, display_name=target.name, role=Role.RESIDENT, password=password
        )
        user_id = int(user.id)
    else:
        user_id = target.user_id
        await accounts.set_password(user_id, password)
    for link in target.members:
        await accounts.link(user_id, LinkKind.HOUSEHOLD, link["household"])
        await accounts.link(user_id, LinkKind.MEMBER, link["member"])
    for household_id in sorted(target.households):
        await HouseholdEvent.insert(
            HouseholdEvent(household=household_id, kind="account_activated", detail={"user_id": user_id})
        )
    await audit.record(
        "account.activated",
        user_id=user_id,
        target_type="user",
        target_id=user_id,
        households=sorted(target.households),
        members=[link["member"] for link in target.members],
        created=target.user_id is None,
    )
    return user_id


async def _failed(challenge_id: int, reason: str) -> None:
    await audit.record(
        "account.activation_failed", target_type="activation", target_id=challenge_id, reason=reason
    )


async def forget_old_challenges() -> int:
    """Delete challenges a day old: they hold phone numbers people typed, known or not."""
    cutoff = clock.now() - KEEP_CHALLENGES
    gone = (
        await ActivationChallenge.delete()
        .where(ActivationChallenge.created_at < cutoff)
        .returning(ActivationChallenge.id)
    )
    return len(gone)
