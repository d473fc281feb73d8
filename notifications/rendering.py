"""Messages in the recipient's language, from one template per event, through the one Jinja engine.

``notifications/events/<event>.txt`` holds the blocks ``title``, ``body`` and ``sms``; each
block switches autoescaping off because the output is text, not HTML.  The recipient's
locale is set around rendering, so ``{% trans %}``, dates and numbers follow it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from babel.dates import format_skeleton
from jinja2 import Template

from marketplace import clock, i18n, templating
from marketplace.settings import get_settings
from notifications.events import Event

# Context values that are data to show as they are, never looked up in the catalogs.
_VERBATIM = {"link", "code", "order_no", "warning_no"}


@dataclass(frozen=True)
class Rendered:
    """One event in one language: inbox/e-mail title and body, and the SMS text as a phone shows it."""

    title: str
    body: str
    sms: str


@contextlib.contextmanager
def speaking(locale: str) -> Iterator[str]:
    """Render in ``locale`` (a supported one, else the default) for the duration of the block."""
    chosen = locale if locale in i18n.SUPPORTED else i18n.DEFAULT_LOCALE
    token = i18n.current_locale.set(chosen)
    try:
        yield chosen
    finally:
        i18n.current_locale.reset(token)


def short_time(value: datetime | None) -> str:
    """``12月1日 09:00`` / ``Dec 1, 09:00`` in the service's zone: short enough for an SMS."""
    if value is None:
        return ""
    local = value.astimezone(clock.local_zone())
    # CLDR has no month-day-time skeleton; the date part follows the locale, the time is 24-hour.
    return f"{format_skeleton('MMMd', local, locale=i18n.current_locale.get())} {local:%H:%M}"


def short_date(value: date | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(clock.local_zone()).date()
    return format_skeleton("MMMd", value, locale=i18n.current_locale.get())


def month_name(value: date | None) -> str:
    """``2026年12月`` / ``December 2026``."""
    if value is None:
        return ""
    return format_skeleton("yMMMM", value, locale=i18n.current_locale.get())


def absolute(link: str | None) -> str:
    """A site path as a full address when the public address is known, for e-mails and SMS."""
    if not link:
        return ""
    base = get_settings().base_url.rstrip("/")
    return f"{base}{link}" if base else link


def _template(event: Event | str) -> Template:
    engine = templating.template_config().engine_instance
    return engine.get_template(f"notifications/events/{Event(event).value}.txt")  # type: ignore[no-any-return]


def _block(template: Template, name: str, variables: dict[str, Any]) -> str:
    render = template.blocks.get(name)
    if render is None:
        return ""
    text = "".join(render(template.new_context(variables)))
    return " ".join(text.split()) if name != "body" else _tidy(text)


def _tidy(text: str) -> str:
    """Trim each line and drop runs of blank lines left by template tags."""
    lines = [line.strip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def template_variables(
    context: Mapping[str, Any], *, role: str | None = None, name: str = ""
) -> dict[str, Any]:
    """What a template sees: the context (catalog strings translated) and the helpers."""
    values: dict[str, Any] = {}
    for key, value in context.items():
        translate = isinstance(value, str) and value and key not in _VERBATIM
        values[key] = i18n.gettext(value) if translate else value
    values.update(
        recipient_role=role or "",
        recipient_name=name,
        short_time=short_time,
        short_date=short_date,
        month_name=month_name,
        url=absolute,
    )
    return values


def render(
    event: Event | str, locale: str, context: Mapping[str, Any], *, role: str | None = None, name: str = ""
) -> Rendered:
    """The event's title, body and SMS text in ``locale``."""
    with speaking(locale):
        template = _template(event)
        variables = template_variables(context, role=role, name=name)
        sms = _block(template, "sms", variables)
        sign = get_settings().sms_sign_name
        return Rendered(
            title=_block(template, "title", variables),
            body=_block(template, "body", variables),
            sms=f"【{sign}】{sms}" if sms and sign else sms,
        )


def render_email(rendered: Rendered, locale: str, *, name: str, link: str | None) -> str:
    """The plain-text e-mail around a rendered event: greeting, body, link, how to change settings."""
    with speaking(locale):
        return _tidy(
            templating.render(
                "notifications/email.txt",
                title=rendered.title,
                body=rendered.body,
                recipient_name=name,
                link=absolute(link),
                preferences=absolute("/notifications/preferences"),
            )
        )
