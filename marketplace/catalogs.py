"""Message catalogs: extract every package's strings and keep its zh_CN and en catalogs in step.

``python -m marketplace.catalogs update`` (``make translations``) adds new strings to each
package's catalogs and drops vanished ones; ``check`` lists the strings that still lack a
Chinese translation (the test suite fails on any); ``fill PACKAGE FILE.json`` puts
translations from ``{"message id": "译文"}`` into a package's zh_CN catalog.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from marketplace.i18n import PACKAGES, ROOT, SUPPORTED

KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
METHOD_MAP = [
    ("**/piccolo_migrations/**", "ignore"),
    ("**.py", "python"),
    ("**/templates/**.html", "jinja2"),
    ("**/templates/**.txt", "jinja2"),  # text messages (SMS, e-mail) rendered by notifications
]
_JINJA = {"extensions": "jinja2.ext.i18n", "trimmed": "true"}
OPTIONS = {"**/templates/**.html": _JINJA, "**/templates/**.txt": _JINJA}


def extract(package: str) -> Catalog:
    """Every translatable string of one package."""
    catalog = Catalog(project="cloudmarket", domain="messages")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT / package), METHOD_MAP, OPTIONS, KEYWORDS, strip_comment_tags=True
    ):
        catalog.add(
            message, None, [(f"{package}/{filename}", lineno)], auto_comments=comments, context=context
        )
    return catalog


def po_path(package: str, locale: str) -> Path:
    return ROOT / package / "translations" / locale / "LC_MESSAGES" / "messages.po"


def _write(path: Path, catalog: Catalog) -> None:
    """Write a catalog without volatile lines (dates, source locations), only when it changed.

    Catalogs then change only when strings change, and branches touching different
    packages never conflict over them.
    """
    buf = io.BytesIO()
    write_po(
        buf, catalog, width=100, omit_header=True, sort_output=True, ignore_obsolete=True, no_location=True
    )
    if not path.is_file() or path.read_bytes() != buf.getvalue():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())


def update(package: str) -> None:
    template = extract(package)
    for locale in SUPPORTED:
        path = po_path(package, locale)
        if path.is_file():
            with path.open("rb") as fh:
                catalog = read_po(fh, locale=locale)
        else:
            catalog = Catalog(locale=locale, project="cloudmarket", domain="messages")
        catalog.update(template, no_fuzzy_matching=True)
        _write(path, catalog)


def _complete(string: object) -> bool:
    """A translation with text in every form (a plural's forms are a tuple)."""
    if isinstance(string, tuple | list):
        return bool(string) and all(string)
    return bool(string)


def untranslated(locale: str = "zh_CN") -> list[tuple[str, str]]:
    """(package, message id) of every string in the code without a translation in ``locale``."""
    missing: list[tuple[str, str]] = []
    for package in PACKAGES:
        if not (ROOT / package).is_dir():
            continue
        path = po_path(package, locale)
        translated: dict[object, object] = {}
        if path.is_file():
            with path.open("rb") as fh:
                translated = {m.id: m.string for m in read_po(fh, locale=locale) if m.id and not m.fuzzy}
        for message in extract(package):
            if message.id and not _complete(translated.get(message.id)):
                text = message.id if isinstance(message.id, str) else message.id[0]
                missing.append((package, text))
    return missing


def fill(package: str, source: Path) -> None:
    """Put translations from a JSON file ``{"message id": "译文"}`` into a package's zh_CN catalog.

    A plural message is named by its singular id; Chinese has one form, used for every number."""
    import json

    path = po_path(package, "zh_CN")
    with path.open("rb") as fh:
        catalog = read_po(fh, locale="zh_CN")
    wanted = json.loads(source.read_text(encoding="utf-8"))
    for message in catalog:
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        if key in wanted:
            message.string = (wanted[key],) if isinstance(message.id, tuple) else wanted[key]
            message.flags.discard("fuzzy")
    _write(path, catalog)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "update":
        for package in argv[2:] or PACKAGES:
            if (ROOT / package).is_dir():
                update(package)
        command = "check"
    if command == "fill" and len(argv) == 4:
        fill(argv[2], Path(argv[3]))
        command = "check"
    if command == "check":
        missing = untranslated()
        for package, text in missing:
            print(f"{package}: {text}")
        print(f"{len(missing)} string(s) without a zh_CN translation")
        return 1 if missing else 0
    print("usage: python -m marketplace.catalogs [update [PACKAGE ...] | check | fill PACKAGE FILE.json]")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
