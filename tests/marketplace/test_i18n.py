"""Translation: locale negotiation and complete Chinese catalogs."""

import pytest

from marketplace import catalogs, i18n


@pytest.mark.parametrize(
    ("choices", "header", "expected"),
    [
        ((None, None), "", "zh_CN"),
        ((None, None), "zh-CN,zh;q=0.9", "zh_CN"),
        ((None, None), "en-US,en;q=0.9", "en"),
        ((None, None), "fr-FR,en;q=0.5", "en"),
        ((None, None), "zh-TW", "zh_CN"),
        ((None, None), "de", "zh_CN"),
        (("en", None), "zh-CN", "en"),
        ((None, "en"), "zh-CN", "en"),
        (("xx", "zh_CN"), "en", "zh_CN"),
        ((None, None), "en;q=0.2, zh;q=0.8", "zh_CN"),
    ],
)
def test_locale_negotiation(choices, header, expected):
    assert i18n.negotiate(*choices, accept_language=header) == expected


def test_every_string_in_the_code_has_a_chinese_translation():
    missing = catalogs.untranslated("zh_CN")
    assert missing == [], "run `make translations` and translate:\n" + "\n".join(
        f"{p}: {m}" for p, m in missing
    )


def test_placeholders_survive_translation():
    token = i18n.current_locale.set("zh_CN")
    try:
        assert i18n.gettext("Page %(page)s of %(pages)s", page=2, pages=5) == "第 2 页，共 5 页"
    finally:
        i18n.current_locale.reset(token)


def test_one_english_text_has_one_chinese_text_across_the_packages():
    """The packages' catalogs merge at run time (a later package wins), so two packages must
    not translate one English text differently: give texts of different meaning distinct ids."""
    from babel.messages.pofile import read_po

    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for package in i18n.PACKAGES:
        path = i18n.ROOT / package / "translations" / "zh_CN" / "LC_MESSAGES" / "messages.po"
        if not path.is_file():
            continue
        with path.open("rb") as f:
            for message in read_po(f):
                if not message.id or not message.string or isinstance(message.id, tuple):
                    continue
                first = seen.setdefault(message.id, (package, message.string))
                if first[1] != message.string:
                    clashes.append(f"{message.id!r}: {first[0]} {first[1]!r}, {package} {message.string!r}")
    assert clashes == [], "one English text, two Chinese texts:\n" + "\n".join(clashes)
