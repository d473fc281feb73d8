"""Jinja through Litestar: one engine, the template folders of every package, shared helpers."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date as babel_format_date
from babel.dates import format_datetime as babel_format_datetime
from babel.numbers import format_decimal
from jinja2 import pass_context
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig
from markupsafe import Markup

from marketplace import clock, formtokens, i18n
from marketplace.auth import ROLE_LABELS, Role

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("marketplace", "households", "providers", "orders", "notifications", "reports")


def mask_id_number(value: str | None) -> str:
    """``320113199001011234`` → ``3201**********1234``; anything short is masked whole."""
    if not value:
        return ""
    if len(value) < 10:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_phone(value: str | None) -> str:
    """``13812345678`` → ``138****5678``."""
    if not value:
        return ""
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def format_datetime(value: datetime | None, fmt: str = "medium") -> str:
    if value is None:
        return ""
    return babel_format_datetime(value, fmt, tzinfo=clock.local_zone(), locale=i18n.current_locale.get())


def format_date(value: date | datetime | None, fmt: str = "medium") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(clock.local_zone()).date()
    return babel_format_date(value, fmt, locale=i18n.current_locale.get())


def format_number(value: float | int | None) -> str:
    if value is None:
        return ""
    return format_decimal(value, locale=i18n.current_locale.get())


def role_label(role: str | Role | None) -> str:
    if not role:
        return ""
    return i18n.gettext(ROLE_LABELS.get(Role(role), str(role)))


@pass_context
def page_query(context: Any, **changes: Any) -> str:
    """The current query string with some parameters changed (for sorting and paging links)."""
    request = context.get("request")
    params: dict[str, str] = dict(request.query_params) if request is not None else {}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    from urllib.parse import urlencode

    return "?" + urlencode(params) if params else "?"


def level_badge(level: int | None) -> Markup:
    """A need-level badge readable without colour: the number and a word."""
    if level is None:
        return Markup('<span class="badge">–</span>')
    words = {1: i18n.N_("Level 1 · most urgent"), 2: i18n.N_("Level 2"), 3: i18n.N_("Level 3")}
    text = i18n.gettext(words.get(int(level), str(level)))
    return Markup('<span class="badge level-{0}">{1}</span>').format(int(level), text)


def register_helpers(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.policies["ext.i18n.trimmed"] = True
    env.globals.update(
        current_locale=i18n.current_locale.get,
        html_lang=lambda: i18n.html_lang(i18n.current_locale.get()),
        language_names=i18n.LANGUAGE_NAMES,
        role_label=role_label,
        page_query=page_query,
        level_badge=level_badge,
        now=clock.now,
        once_input=formtokens.once_input,
    )
    env.filters.update(
        mask_id=mask_id_number,
        mask_phone=mask_phone,
        datetime=format_datetime,
        date=format_date,
        number=format_number,
    )


@lru_cache(maxsize=1)
def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    directories: list[Path | str] = [
        ROOT / pkg / "templates" for pkg in PACKAGES if (ROOT / pkg / "templates").is_dir()
    ]
    return TemplateConfig(
        directory=directories,  # type: ignore[arg-type]
        engine=JinjaTemplateEngine,
        engine_callback=register_helpers,
    )


def render(name: str, **context: Any) -> str:
    """Render a template outside a request (messages built by actors), with the same engine."""
    engine = template_config().engine_instance
    return engine.get_template(name).render(**context)
