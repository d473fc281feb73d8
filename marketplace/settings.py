"""Every setting of the service, read once from the environment.

Real environment variables win over a ``.env`` file in the working directory.  With
nothing set the service runs embedded: a SQLite file and an in-process broker under
``./var/``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

ENV_FILE = Path(".env")


def _load_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """Read KEY=VALUE lines from a ``.env`` file; comments and blank lines are skipped."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, _load_env_file().get(name, default))


def _bool(name: str, default: bool) -> bool:
    raw = _env(name, "")
    if raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    raw = _env(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from exc


def _persisted_secret(var_dir: Path, name: str, nbytes: int = 32) -> str:
    """A secret kept in ``var/`` so that embedded mode survives restarts without setup."""
    path = var_dir / name
    if path.is_file():
        return path.read_text(encoding="ascii").strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    path.write_text(value, encoding="ascii")
    path.chmod(0o600)
    return value


@dataclass(frozen=True)
class Settings:
    """The service's configuration; each field names the variable that sets it."""

    var_dir: Path = field(default_factory=lambda: Path(_env("CLOUDMARKET_VAR_DIR", "var")).resolve())
    """CLOUDMARKET_VAR_DIR: where embedded mode keeps its database, keys and files."""

    database_url: str = ""
    """DATABASE_URL: ``postgresql://user@host:port/db``; empty means SQLite in ``var/``."""

    redis_url: str = field(default_factory=lambda: _env("REDIS_URL"))
    """REDIS_URL: ``redis://host:port/db``; empty means an in-process broker and stores."""

    host: str = field(default_factory=lambda: _env("HOST", "127.0.0.1"))
    """HOST: the address ``cloudmarket serve`` binds."""

    port: int = field(default_factory=lambda: _int("PORT", 8000))
    """PORT: the port ``cloudmarket serve`` binds."""

    web_workers: int = field(default_factory=lambda: _int("WEB_CONCURRENCY", 1))
    """WEB_CONCURRENCY: web processes started by one ``cloudmarket serve``."""

    base_url: str = field(default_factory=lambda: _env("CLOUDMARKET_BASE_URL"))
    """CLOUDMARKET_BASE_URL: the public address, e.g. ``https://cs.example.gov.cn``."""

    secret_key: str = ""
    """CLOUDMARKET_SECRET_KEY: signs CSRF tokens; generated under ``var/`` if unset."""

    data_key: str = ""
    """CLOUDMARKET_DATA_KEY: encrypts personal data at rest; generated under ``var/`` if unset."""

    demo_data: bool = False
    """CLOUDMARKET_DEMO_DATA: load demo data on first start (default on when embedded)."""

    worker_threads: int = field(default_factory=lambda: _int("CLOUDMARKET_WORKER_THREADS", 4))
    """CLOUDMARKET_WORKER_THREADS: actor threads per worker (or in the embedded web process)."""

    worker_timeout_ms: int = field(default_factory=lambda: _int("CLOUDMARKET_WORKER_TIMEOUT_MS", 100))
    """CLOUDMARKET_WORKER_TIMEOUT_MS: how long an idle worker waits on the broker per poll."""

    redis_namespace: str = field(default_factory=lambda: _env("CLOUDMARKET_REDIS_NAMESPACE", "cm"))
    """CLOUDMARKET_REDIS_NAMESPACE: prefix of every Redis key the service writes."""

    outbox_lease_seconds: int = field(default_factory=lambda: _int("CLOUDMARKET_OUTBOX_LEASE_SECONDS", 900))
    """CLOUDMARKET_OUTBOX_LEASE_SECONDS: a sent message not finished in this time is sent again."""

    session_idle_minutes: int = field(default_factory=lambda: _int("CLOUDMARKET_SESSION_IDLE_MINUTES", 30))
    """CLOUDMARKET_SESSION_IDLE_MINUTES: a session unused this long ends."""

    session_max_hours: int = field(default_factory=lambda: _int("CLOUDMARKET_SESSION_MAX_HOURS", 12))
    """CLOUDMARKET_SESSION_MAX_HOURS: a session ends this long after login, used or not."""

    login_rate_limit: int = field(default_factory=lambda: _int("CLOUDMARKET_LOGIN_RATE_LIMIT", 5))
    """CLOUDMARKET_LOGIN_RATE_LIMIT: login attempts a minute per phone (six times as many per address)."""

    api_rate_limit: int = field(default_factory=lambda: _int("CLOUDMARKET_API_RATE_LIMIT", 600))
    """CLOUDMARKET_API_RATE_LIMIT: API requests per client a minute."""

    trusted_proxies: bool = field(default_factory=lambda: _bool("CLOUDMARKET_TRUSTED_PROXY", False))
    """CLOUDMARKET_TRUSTED_PROXY: one proxy in front: trust the address it adds to X-Forwarded-For."""

    log_level: str = field(default_factory=lambda: _env("CLOUDMARKET_LOG_LEVEL", "INFO").upper())
    """CLOUDMARKET_LOG_LEVEL: DEBUG, INFO, WARNING or ERROR."""

    time_zone: str = field(default_factory=lambda: _env("CLOUDMARKET_TIME_ZONE", "Asia/Shanghai"))
    """CLOUDMARKET_TIME_ZONE: the zone dates are shown and months are counted in."""

    password_hash_cost: str = field(default_factory=lambda: _env("CLOUDMARKET_PASSWORD_HASH", "default"))
    """CLOUDMARKET_PASSWORD_HASH: ``default`` (argon2id, RFC 9106 low-memory) or ``fast`` (tests)."""

    sms_gateway_url: str = field(default_factory=lambda: _env("CLOUDMARKET_SMS_GATEWAY_URL"))
    """CLOUDMARKET_SMS_GATEWAY_URL: the HTTP SMS gateway to POST to; empty means the local sandbox."""

    sms_gateway_secret: str = field(default_factory=lambda: _env("CLOUDMARKET_SMS_GATEWAY_SECRET"))
    """CLOUDMARKET_SMS_GATEWAY_SECRET: signs gateway requests (HMAC-SHA256, Standard Webhooks headers)."""

    sms_sign_name: str = field(default_factory=lambda: _env("CLOUDMARKET_SMS_SIGN_NAME", "云超市"))
    """CLOUDMARKET_SMS_SIGN_NAME: the registered SMS signature, shown as 【...】 before each text."""

    sms_templates: str = field(default_factory=lambda: _env("CLOUDMARKET_SMS_TEMPLATES"))
    """CLOUDMARKET_SMS_TEMPLATES: gateway template codes, ``event=CODE,event.en=CODE,...``."""

    sms_sandbox_public: bool = False
    """CLOUDMARKET_SMS_SANDBOX_PUBLIC: anyone may read the SMS sandbox page (codes too): demos only."""

    smtp_host: str = field(default_factory=lambda: _env("CLOUDMARKET_SMTP_HOST"))
    """CLOUDMARKET_SMTP_HOST: the mail server for e-mail notifications; empty turns e-mail off."""

    smtp_port: int = field(default_factory=lambda: _int("CLOUDMARKET_SMTP_PORT", 587))
    """CLOUDMARKET_SMTP_PORT: the mail server's port."""

    smtp_security: str = field(default_factory=lambda: _env("CLOUDMARKET_SMTP_SECURITY", "starttls").lower())
    """CLOUDMARKET_SMTP_SECURITY: ``starttls``, ``tls`` (implicit, port 465) or ``none``."""

    smtp_username: str = field(default_factory=lambda: _env("CLOUDMARKET_SMTP_USERNAME"))
    """CLOUDMARKET_SMTP_USERNAME: login at the mail server; empty sends without logging in."""

    smtp_password: str = field(default_factory=lambda: _env("CLOUDMARKET_SMTP_PASSWORD"))
    """CLOUDMARKET_SMTP_PASSWORD: password at the mail server."""

    smtp_from: str = field(
        default_factory=lambda: _env("CLOUDMARKET_SMTP_FROM", "云超市 <noreply@localhost>")
    )
    """CLOUDMARKET_SMTP_FROM: the sender of notification e-mails."""

    notify_timeout_seconds: int = field(
        default_factory=lambda: _int("CLOUDMARKET_NOTIFY_TIMEOUT_SECONDS", 10)
    )
    """CLOUDMARKET_NOTIFY_TIMEOUT_SECONDS: how long one SMS, e-mail or webhook send may take."""

    notify_max_attempts: int = field(default_factory=lambda: _int("CLOUDMARKET_NOTIFY_MAX_ATTEMPTS", 6))
    """CLOUDMARKET_NOTIFY_MAX_ATTEMPTS: tries per message before it is logged as failed."""

    quiet_hours: str = field(default_factory=lambda: _env("CLOUDMARKET_QUIET_HOURS", "22:00-07:00"))
    """CLOUDMARKET_QUIET_HOURS: default quiet hours for new users, local time; empty for none."""

    routing_pool_size: int = field(default_factory=lambda: _int("CLOUDMARKET_ROUTING_POOL_SIZE", 5))
    """CLOUDMARKET_ROUTING_POOL_SIZE: how many providers see an open-pool order at once."""

    routing_max_attempts: int = field(default_factory=lambda: _int("CLOUDMARKET_ROUTING_MAX_ATTEMPTS", 5))
    """CLOUDMARKET_ROUTING_MAX_ATTEMPTS: offer rounds before an order goes to its steward."""

    auto_confirm_days: int = field(default_factory=lambda: _int("CLOUDMARKET_AUTO_CONFIRM_DAYS", 3))
    """CLOUDMARKET_AUTO_CONFIRM_DAYS: a served order nobody confirmed or disputed is confirmed after this."""

    credits_prorate: bool = False
    """CLOUDMARKET_CREDITS_PRORATE: a household that gets its level mid-month gets that month's credits
    for the days left (true) or in full (false)."""

    booking_days_ahead: int = field(default_factory=lambda: _int("CLOUDMARKET_BOOKING_DAYS_AHEAD", 30))
    """CLOUDMARKET_BOOKING_DAYS_AHEAD: how far ahead a service can be booked, in days."""

    def __post_init__(self) -> None:
        # Fields that depend on var_dir or on the mode are filled here, once.
        set_ = object.__setattr__
        database_url = _env("DATABASE_URL") or f"sqlite:///{self.var_dir / 'cloudmarket.sqlite3'}"
        set_(self, "database_url", database_url)
        set_(self, "secret_key", _env("CLOUDMARKET_SECRET_KEY") or self._embedded_secret("secret_key"))
        set_(self, "data_key", _env("CLOUDMARKET_DATA_KEY") or self._embedded_secret("data_key"))
        set_(self, "demo_data", _bool("CLOUDMARKET_DEMO_DATA", self.embedded))
        set_(self, "sms_sandbox_public", _bool("CLOUDMARKET_SMS_SANDBOX_PUBLIC", False))
        set_(self, "credits_prorate", _bool("CLOUDMARKET_CREDITS_PRORATE", True))

    def _embedded_secret(self, name: str) -> str:
        if not self.is_sqlite:
            raise SystemExit(
                f"CLOUDMARKET_{name.upper()} must be set when DATABASE_URL points at PostgreSQL: "
                "every process must share the same key."
            )
        return _persisted_secret(self.var_dir, name)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def embedded(self) -> bool:
        """True when the whole service runs in one process with nothing installed."""
        return self.is_sqlite and not self.redis_url

    @property
    def sqlite_path(self) -> Path:
        return Path(self.database_url.removeprefix("sqlite:///"))

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    def public(self) -> dict[str, Any]:
        """The settings with secrets and credentials hidden, for ``cloudmarket check``."""
        hidden = {"secret_key", "data_key", "sms_gateway_secret", "smtp_password"}
        shown: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name in hidden:
                value = "(set)" if value else "(empty)"
            elif name.endswith("_url") and "@" in str(value):
                scheme, _, rest = str(value).partition("://")
                value = f"{scheme}://***@{rest.rpartition('@')[2]}"
            shown[name] = value
        return shown


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
