"""Translation: zh-CN first, English when asked for.

Message ids are English.  Each package keeps its own catalog in
``<package>/translations/<locale>/LC_MESSAGES/messages.po``; they are compiled in memory at
start-up and merged, so there is no build step and no compiled file to keep in step.  The
locale of the current request lives in a context variable; code marks strings with
:func:`gettext` (or ``_``) when it renders them, and with :func:`N_` where a string is
defined before anyone knows who will read it (error messages, labels in tables of data).
"""

from __future__ import annotations

import io
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("marketplace", "households", "providers", "orders", "notifications", "reports")
SUPPORTED = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
# How each locale is named in its own language, for the language switcher.
LANGUAGE_NAMES = {"zh_CN": "中文", "en": "English"}

_BY_LANGUAGE = {"zh": "zh_CN", "en": "en"}

current_locale: ContextVar[str] = ContextVar("cloudmarket_locale", default=DEFAULT_LOCALE)


def catalog_paths(locale: str) -> list[Path]:
    return [
        ROOT / pkg / "translations" / locale / "LC_MESSAGES" / "messages.po"
        for pkg in PACKAGES
        if (ROOT / pkg / "translations" / locale / "LC_MESSAGES" / "messages.po").is_file()
    ]


@lru_cache(maxsize=len(SUPPORTED))
def translations(locale: str) -> NullTranslations:
    """All packages' catalogs for ``locale``, merged."""
    merged: NullTranslations | None = None
    for path in catalog_paths(locale):
        with path.open("rb") as fh:
            catalog = read_po(fh, locale=locale)
        buf = io.BytesIO()
        write_mo(buf, catalog)
        buf.seek(0)
        loaded = Translations(buf)
        if isinstance(merged, Translations):
            merged.merge(loaded)
        else:
            merged = loaded
    return merged or NullTranslations()


def gettext(message: str, **params: Any) -> str:
    """``message`` in the current locale, with ``%(name)s`` placeholders filled in."""
    text = translations(current_locale.get()).gettext(message)
    return text % params if params else text


def ngettext(singular: str, plural: str, n: int, **params: Any) -> str:
    text = translations(current_locale.get()).ngettext(singular, plural, n)
    params.setdefault("num", n)
    return text % params


_ = gettext


def N_(message: str) -> str:  # noqa: N802 - the conventional name for a deferred marker
    """Mark a string for extraction without translating it yet."""
    return message


def negotiate(*candidates: str | None, accept_language: str = "") -> str:
    """The first supported locale among explicit choices, then the browser's preferences."""
    for candidate in candidates:
        if candidate in SUPPORTED:
            return candidate
    wanted = []
    for part in accept_language.split(","):
        tag, _, q = part.strip().partition(";q=")
        if not tag:
            continue
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        wanted.append((weight, tag.replace("-", "_")))
    wanted.sort(key=lambda item: -item[0])  # stable: equal weights keep the browser's order
    for weight, tag in wanted:
        # Any Chinese ("zh", "zh-TW", "zh-Hans-CN") reads zh_CN best; any English reads en.
        language = tag.split("_")[0].lower()
        if weight > 0 and language in _BY_LANGUAGE:
            return _BY_LANGUAGE[language]
    return DEFAULT_LOCALE


def html_lang(locale: str) -> str:
    """The value of ``<html lang>``: ``zh-CN`` or ``en``."""
    return locale.replace("_", "-")
