"""Demo data for a first look: one account per role, and what each package adds.

Seeded once (on the first embedded start, or with ``cloudmarket seed-demo``).  Passwords
are random, kept in ``var/demo_credentials.json`` and printed at every start, so that a
demo machine reachable by others is not open with a published password.
"""

from __future__ import annotations

import importlib
import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from marketplace import accounts
from marketplace.auth import Role
from marketplace.settings import get_settings
from marketplace.tables import User

# Packages that add demo data, in order; each has ``async def seed(ctx: DemoContext)``.
DEMO_MODULES: tuple[str, ...] = ("households.demo", "notifications.demo", "providers.demo", "orders.demo")

DEMO_ACCOUNTS = (
    (Role.ADMIN, "13800000001", "民政局管理员 Admin Wang"),
    (Role.STEWARD, "13800000002", "救助小管家 Steward Li"),
    (Role.PROVIDER_STAFF, "13800000003", "社会组织 Staff Zhao"),
    (Role.VOLUNTEER, "13800000004", "志愿者 Volunteer Chen"),
    (Role.RESIDENT, "13800000005", "居民 Resident Zhang"),
)


@dataclass
class Credential:
    role: str
    phone: str
    password: str
    name: str


@dataclass
class DemoContext:
    """What the demo seeders share: the demo accounts by role."""

    users: dict[Role, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def credentials_path() -> Path:
    return get_settings().var_dir / "demo_credentials.json"


def load_credentials() -> list[Credential]:
    path = credentials_path()
    if not path.is_file():
        return []
    return [Credential(**item) for item in json.loads(path.read_text(encoding="utf-8"))]


async def is_seeded() -> bool:
    return bool(await User.exists().where(User.phone == DEMO_ACCOUNTS[0][1]))


async def seed_demo() -> list[Credential]:
    """Create the demo data unless it exists; returns the demo credentials."""
    if await is_seeded():
        return load_credentials()
    ctx = DemoContext()
    creds: list[Credential] = []
    for role, phone, name in DEMO_ACCOUNTS:
        password = secrets.token_urlsafe(9)
        user = await accounts.create_user(phone=phone, display_name=name, role=role, password=password)
        ctx.users[role] = user.id
        creds.append(Credential(role=str(role), phone=phone, password=password, name=name))
    for module in DEMO_MODULES:
        await importlib.import_module(module).seed(ctx)
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(c) for c in creds], ensure_ascii=False, indent=2), encoding="utf-8")
    path.chmod(0o600)
    return creds


def format_credentials(creds: list[Credential]) -> str:
    if not creds:
        return ""
    width = max(len(c.role) for c in creds)
    lines = ["Demo accounts (phone / password):"]
    lines += [f"  {c.role.ljust(width)}  {c.phone}  {c.password}   {c.name}" for c in creds]
    return "\n".join(lines)
