"""Accounts: creating users, logging in and out, server-side sessions, API clients, links."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from marketplace import audit, clock, db, kv, logs, ratelimit, security
from marketplace.auth import LinkKind, Principal, Role, links_from_rows
from marketplace.errors import FieldError, NotAuthenticated, NotFound, ValidationFailed
from marketplace.i18n import N_
from marketplace.settings import get_settings
from marketplace.tables import ApiClient, User, UserLink

PHONE_RE = re.compile(r"^1[3-9]\d{9}$")
SESSION_STORE = "sessions"
TOKEN_TOUCH_INTERVAL = timedelta(minutes=5)
SESSION_TOUCH_INTERVAL = timedelta(minutes=1)


def normalise_phone(raw: str) -> str:
    """Digits only, without a +86 / 0086 country prefix."""
    digits = re.sub(r"[\s\-()]", "", raw or "")
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
    return digits


def validate_phone(raw: str, field_name: str = "phone") -> str:
    phone = normalise_phone(raw)
    if not phone:
        raise ValidationFailed.field(field_name, N_("Enter a mobile phone number."))
    if not PHONE_RE.match(phone):
        raise ValidationFailed.field(
            field_name, N_("Enter an 11-digit mainland mobile number starting with 1, e.g. 13812345678.")
        )
    return phone


def validate_password(password: str, field_name: str = "password") -> None:
    if len(password) < security.MIN_PASSWORD_LENGTH:
        raise ValidationFailed.field(
            field_name,
            N_("The password must have at least %(n)s characters."),
            n=security.MIN_PASSWORD_LENGTH,
        )


async def create_user(
    *,
    phone: str,
    display_name: str,
    role: Role | str,
    password: str | None = None,
    locale: str = "",
) -> User:
    """A new account; the phone number is its login and must be unused."""
    errors: list[FieldError] = []
    try:
        phone = validate_phone(phone)
    except ValidationFailed as exc:
        errors += exc.errors
    if not display_name.strip():
        errors.append(FieldError("display_name", N_("Enter a name.")))
    try:
        role = Role(role)
    except ValueError:
        errors.append(
            FieldError("role", N_("Choose one of the roles: %(roles)s."), {"roles": ", ".join(Role)})
        )
    if password is not None:
        try:
            validate_password(password)
        except ValidationFailed as exc:
            errors += exc.errors
    if errors:
        raise ValidationFailed(errors=errors)
    if await User.exists().where(User.phone == phone):
        raise ValidationFailed.field("phone", N_("An account with this phone number already exists."))
    user = User(
        phone=phone,
        display_name=display_name.strip(),
        role=str(role),
        password_hash=security.hash_password(password) if password else None,
        locale=locale,
    )
    await user.save()
    return user


async def set_password(user_id: int, password: str) -> None:
    validate_password(password)
    await User.update(
        {
            User.password_hash: security.hash_password(password),
            User.password_changed_at: clock.now(),
        }
    ).where(User.id == user_id)


async def set_locale(user_id: int, locale: str) -> None:
    await User.update({User.locale: locale}).where(User.id == user_id)


async def link(user_id: int, kind: LinkKind, ref: object) -> None:
    """Let a user act for a record (idempotent)."""
    key = f"{user_id}:{kind.value}:{ref}"
    await UserLink.insert(UserLink(user=user_id, kind=kind.value, target=str(ref), key=key)).on_conflict(
        action="DO NOTHING"
    )


async def unlink(user_id: int, kind: LinkKind, ref: object) -> None:
    await UserLink.delete().where(UserLink.key == f"{user_id}:{kind.value}:{ref}")


async def linked_users(kind: LinkKind, ref: object) -> list[int]:
    """Ids of the users who act for a record."""
    rows = await UserLink.select(UserLink.user).where(
        (UserLink.kind == kind.value) & (UserLink.target == str(ref))
    )
    return [row["user"] for row in rows]


# -- login and sessions ----------------------------------------------------------------------


@dataclass
class Login:
    """A successful login: the cookie value to set and who logged in."""

    token: str
    user: dict[str, Any]


async def login(phone: str, password: str) -> Login:
    """Check the password, rate-limited per phone and per address; start a new session."""
    settings = get_settings()
    phone = normalise_phone(phone)
    missing = []
    if not phone:
        missing.append(FieldError("phone", N_("Enter your mobile phone number.")))
    if not password:
        missing.append(FieldError("password", N_("Enter your password.")))
    if missing:
        raise ValidationFailed(errors=missing)

    await ratelimit.check("login-phone", phone or "-", settings.login_rate_limit)
    await ratelimit.check("login-ip", logs.client_ip.get() or "-", settings.login_rate_limit * 6)
    rows = await User.select().where(User.phone == phone).first()
    ok = security.verify_password(rows["password_hash"] if rows else None, password)
    if not rows or not ok or not rows["is_active"]:
        await audit.record(
            "login_failed",
            user_id=rows["id"] if rows else None,
            reason="inactive" if rows and ok else "bad_credentials",
        )
        raise NotAuthenticated(
            N_("The phone number or password is not right. Please check both and try again.")
        )
    now = clock.now()
    update: dict[Any, Any] = {User.last_login_at: now}
    if security.password_needs_rehash(rows["password_hash"]):
        update[User.password_hash] = security.hash_password(password)
    await User.update(update).where(User.id == rows["id"])
    token = await start_session(rows["id"])
    await audit.record("login", user_id=rows["id"])
    return Login(token=token, user=rows)


async def start_session(user_id: int) -> str:
    """A brand-new session id: never reuse one that existed before login."""
    token = secrets.token_urlsafe(32)
    now = clock.now().isoformat()
    await _save_session(token, {"user_id": user_id, "created_at": now, "seen_at": now})
    return token


async def _save_session(token: str, data: dict[str, Any]) -> None:
    idle = timedelta(minutes=get_settings().session_idle_minutes)
    await kv.store(SESSION_STORE).set(security.session_key(token), json.dumps(data), expires_in=idle)


async def end_session(token: str, *, user_id: int | None = None) -> None:
    """Log out: the session is gone from the server, whatever the browser keeps."""
    await kv.store(SESSION_STORE).delete(security.session_key(token))
    if user_id is not None:
        await audit.record("logout", user_id=user_id)


async def session_user_id(token: str) -> int | None:
    """The user of a live session, renewing its idle timeout; None if ended or expired.

    The store drops a session after the idle time on its own; the times kept in the session
    are checked against the service clock too, and ``seen_at`` is written at most once a
    minute, not on every request.
    """
    settings = get_settings()
    key = security.session_key(token)
    store = kv.store(SESSION_STORE)
    raw = await store.get(key)
    if raw is None:
        return None
    data = json.loads(raw)
    now = clock.now()
    created = datetime.fromisoformat(data["created_at"])
    seen = datetime.fromisoformat(data.get("seen_at", data["created_at"]))
    if now - created > timedelta(hours=settings.session_max_hours) or now - seen > timedelta(
        minutes=settings.session_idle_minutes
    ):
        await store.delete(key)
        return None
    if now - seen > SESSION_TOUCH_INTERVAL:
        data["seen_at"] = now.isoformat()
        await _save_session(token, data)
    return int(data["user_id"])


async def principal_for_user(user_id: int, session_key: str = "") -> Principal | None:
    """The user and what they act for, in one round trip (this runs on every request)."""
    rows = await User.raw(
        "SELECT u.id, u.role, u.display_name, u.locale, u.is_active, l.kind, l.target "
        'FROM cm_user u LEFT JOIN cm_user_link l ON l."user" = u.id WHERE u.id = {}',
        user_id,
    )
    if not rows or not rows[0]["is_active"]:
        return None
    user = rows[0]
    links = [row for row in rows if row["kind"] is not None]
    return Principal(
        user_id=user["id"],
        role=Role(user["role"]),
        display_name=user["display_name"],
        locale=user["locale"],
        links=links_from_rows(links),
        session_key=session_key,
    )


# -- API clients -------------------------------------------------------------------------------


@dataclass
class IssuedClient:
    client_id: int
    token: str


async def create_api_client(
    name: str, scopes: list[str], *, acting_user_id: int | None = None, created_by: int | None = None
) -> IssuedClient:
    """A new integration client; its token is returned once and stored only as a hash."""
    if not name.strip():
        raise ValidationFailed.field("name", N_("Enter a name for the client."))
    issued = security.new_api_token()
    client = ApiClient(
        name=name.strip(),
        token_prefix=issued.prefix,
        token_hash=issued.digest,
        scopes=" ".join(sorted(set(scopes))),
        acting_user=acting_user_id,
        created_by=created_by,
    )
    await client.save()
    await audit.record(
        "api_client_created", user_id=created_by, target_type="api_client", target_id=client.id
    )
    return IssuedClient(client_id=client.id, token=issued.token)


async def revoke_api_client(client_id: int, *, by_user_id: int | None = None) -> None:
    async with db.atomic():
        updated = (
            await ApiClient.update({ApiClient.revoked_at: clock.now()})
            .where((ApiClient.id == client_id) & ApiClient.revoked_at.is_null())
            .returning(ApiClient.id)
        )
        if not updated:
            raise NotFound()
        await audit.record(
            "api_client_revoked", user_id=by_user_id, target_type="api_client", target_id=client_id
        )


async def list_api_clients() -> list[dict[str, Any]]:
    return await ApiClient.select(
        ApiClient.id,
        ApiClient.name,
        ApiClient.token_prefix,
        ApiClient.scopes,
        ApiClient.created_at,
        ApiClient.last_used_at,
        ApiClient.revoked_at,
    ).order_by(ApiClient.id)


async def principal_for_token(token: str) -> Principal | None:
    """The integration behind a bearer token, or None if unknown or revoked."""
    parts = security.split_api_token(token)
    if parts is None:
        return None
    prefix, secret = parts
    client = await ApiClient.select().where(ApiClient.token_prefix == prefix).first()
    if client is None or client["revoked_at"] is not None:
        return None
    if not security.digest_matches(secret, client["token_hash"]):
        return None
    now = clock.now()
    if client["last_used_at"] is None or now - client["last_used_at"] > TOKEN_TOUCH_INTERVAL:
        await ApiClient.update({ApiClient.last_used_at: now}).where(ApiClient.id == client["id"])
    scopes = frozenset(s for s in client["scopes"].split() if s)
    acting = None
    if client["acting_user"] is not None:
        acting = await principal_for_user(client["acting_user"])
    return Principal(
        user_id=acting.user_id if acting else None,
        role=acting.role if acting else None,
        display_name=client["name"],
        links=acting.links if acting else {},
        client_id=client["id"],
        scopes=scopes,
    )
