"""The senders: SMS (sandbox or HTTP gateway), e-mail over SMTP, and signed webhooks.

Each returns the receiver's id for the message, or raises :class:`SendFailed` saying whether
trying again may help.  Failure reasons are short and hold no personal data: they are shown
in the delivery log.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import httpx

from marketplace import clock
from marketplace.settings import Settings, get_settings
from notifications import signing
from notifications.tables import SandboxSms

USER_AGENT = "CloudSupermarket-Notifications/1"
TRANSIENT_STATUS = {408, 425, 429}


class SendFailed(Exception):
    """A send did not go through; ``permanent`` when trying again cannot help."""

    def __init__(self, reason: str, *, permanent: bool = False, retry_after: timedelta | None = None):
        super().__init__(reason)
        self.reason = reason[:300]
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True)
class SmsMessage:
    """One text to one phone, with what a template-based gateway needs."""

    message_id: str
    phone: str
    text: str
    locale: str
    template: str | None = None
    params: dict[str, str] = field(default_factory=dict)


# -- HTTP ------------------------------------------------------------------------------------------


def _retry_after(response: httpx.Response) -> timedelta | None:
    raw = response.headers.get("retry-after", "")
    return timedelta(seconds=int(raw)) if raw.isdigit() else None


def _reason(response: httpx.Response) -> str:
    """``HTTP 400 invalid_phone``: the status and, if the receiver gave one, its error code."""
    code = ""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        raw = data.get("code") or data.get("error") or ""
        code = str(raw)[:60] if isinstance(raw, str | int) else ""
    return f"HTTP {response.status_code} {code}".strip()


async def post_signed(url: str, secret: str, message_id: str, payload: dict[str, Any]) -> httpx.Response:
    """POST JSON signed per Standard Webhooks; SendFailed for anything but a 2xx answer."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"content-type": "application/json", "user-agent": USER_AGENT}
    if secret:
        headers |= signing.headers(secret, message_id, clock.now(), body)
    try:
        async with httpx.AsyncClient(
            timeout=get_settings().notify_timeout_seconds, follow_redirects=False
        ) as c:
            response = await c.post(url, content=body, headers=headers)
    except httpx.TimeoutException:
        raise SendFailed("timed out") from None
    except httpx.HTTPError as exc:
        raise SendFailed(f"connection failed: {type(exc).__name__}") from None
    status = response.status_code
    if 200 <= status < 300:
        return response
    transient = status >= 500 or status in TRANSIENT_STATUS
    raise SendFailed(_reason(response), permanent=not transient, retry_after=_retry_after(response))


# -- SMS -------------------------------------------------------------------------------------------


async def send_sms(message: SmsMessage) -> str:
    """Hand a text to the configured gateway; without one, to the sandbox table."""
    config = get_settings()
    if not config.sms_gateway_url:
        row = SandboxSms(
            phone=message.phone,
            text=message.text,
            template=message.template or "",
            params=json.dumps(message.params, ensure_ascii=False),
            message_id=message.message_id,
        )
        await row.save()
        return f"sandbox-{row.id}"
    response = await post_signed(
        config.sms_gateway_url,
        config.sms_gateway_secret,
        message.message_id,
        {
            "id": message.message_id,
            "phone": message.phone,
            "sign_name": config.sms_sign_name,
            "template": message.template,
            "params": message.params,
            "text": message.text,
            "locale": message.locale,
        },
    )
    try:
        data = response.json()
    except ValueError:
        data = {}
    return str(data.get("id", ""))[:100] if isinstance(data, dict) else ""


# -- e-mail ----------------------------------------------------------------------------------------


def _smtp_send(config: Settings, message: EmailMessage) -> None:
    timeout = config.notify_timeout_seconds
    server: smtplib.SMTP
    if config.smtp_security == "tls":
        server = smtplib.SMTP_SSL(
            config.smtp_host, config.smtp_port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        server = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=timeout)
    with server:
        if config.smtp_security == "starttls":
            server.starttls(context=ssl.create_default_context())
        if config.smtp_username:
            server.login(config.smtp_username, config.smtp_password)
        server.send_message(message)


async def send_email(*, to: str, subject: str, text: str, message_id: str) -> str:
    """Send a plain-text e-mail through the configured server; returns its Message-ID."""
    config = get_settings()
    if not config.smtp_host:
        raise SendFailed("e-mail is not configured", permanent=True)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = config.smtp_from
    message["To"] = to
    message["Date"] = format_datetime(clock.now())
    domain = config.smtp_from.rpartition("@")[2].strip("> ") or "localhost"
    message["Message-ID"] = make_msgid(idstring=message_id.replace(":", "."), domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    try:
        await asyncio.to_thread(_smtp_send, config, message)
    except smtplib.SMTPAuthenticationError as exc:
        # A wrong login is the service's configuration, not the message: retry once it is fixed.
        raise SendFailed(f"SMTP login refused ({exc.smtp_code})") from None
    except smtplib.SMTPResponseException as exc:
        # 4xx: the server asks to try later; 5xx: it will never take this message.
        raise SendFailed(f"SMTP {exc.smtp_code}", permanent=500 <= exc.smtp_code < 600) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _ in exc.recipients.values()})
        raise SendFailed(f"SMTP recipient refused {codes}", permanent=all(c >= 500 for c in codes)) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SendFailed(f"SMTP connection failed: {type(exc).__name__}") from None
    return str(message["Message-ID"])


# -- webhooks --------------------------------------------------------------------------------------


async def send_webhook(*, url: str, secret: str, message_id: str, payload: dict[str, Any]) -> str:
    """POST one signed event to an integration; returns the status it answered."""
    response = await post_signed(url, secret, message_id, payload)
    return f"HTTP {response.status_code}"
