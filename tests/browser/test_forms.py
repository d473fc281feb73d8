"""The main forms with the keyboard alone: every field is reached by Tab, Enter sends the form,
and what needs fixing is said next to each field (aria-invalid, aria-describedby), in Chinese."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import PHONE, check_accessibility, log_in

# (role or None for a visitor, the path, links to follow from there to the form)
FORMS = [
    (None, "/providers/register/", None),
    ("steward", "/households/new", None),
    ("steward", "/signals/new", None),
    ("admin", "/admin/catalog/new", None),
    ("provider_staff", "/portal/", ('a[href$="/offerings"]', 'a[href$="/offerings/new"]')),
]

# Focusable fields of the form, visible, in document order, each tagged with a key: a radio
# group is one stop for Tab (arrow keys move inside it), so its radios share a key.
_FIELDS_JS = """(form) => [...form.querySelectorAll('input, select, textarea, button')]
    .filter((e) => e.type !== 'hidden' && !e.disabled && e.offsetParent !== null && !e.closest('details:not([open])'))
    .map((e, i) => (e.dataset.kbd = e.type === 'radio' ? 'radio:' + e.name : String(i)))"""

# Each field marked invalid, with the text of what it points to and how far away it is.
_ERRORS_JS = """() => [...document.querySelectorAll('main [aria-invalid="true"]')].map((field) => {
    const ids = (field.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean);
    const notes = ids.map((id) => document.getElementById(id)).filter((n) => n && n.offsetParent !== null);
    const box = field.getBoundingClientRect();
    const errors = notes.filter((n) => n.classList.contains('field-error'));
    return {
        field: field.id || field.name,
        text: errors.map((n) => n.innerText.trim()).join(' '),
        gap: errors.length ? Math.min(...errors.map((n) => {
            const b = n.getBoundingClientRect();
            return Math.max(0, b.top - box.bottom, box.top - b.bottom);
        })) : null,
    };
})"""


async def _focused(page) -> str:
    return str(await page.evaluate("() => document.activeElement.dataset.kbd || ''"))


@pytest.mark.browser
@pytest.mark.parametrize(
    ("role", "path", "link"), FORMS, ids=[f[1].strip("/").replace("/", "-") for f in FORMS]
)
async def test_a_form_by_keyboard_alone_says_what_to_fix_next_to_each_field(
    live_server, open_page, shot, role, path, link
):
    page = await open_page(viewport=PHONE)
    if role:
        await log_in(page, live_server, role)
    await page.goto(f"{live_server.url}{path}")
    for step in link or ():
        await page.locator(step).first.click()
        await page.wait_for_load_state()
    form = page.locator("main form[method=post]").last
    fields = list(dict.fromkeys(await form.evaluate(_FIELDS_JS)))
    assert fields, "the form has no fields"

    # Tab from the top of the page until the last field of the form: each field comes in turn.
    reached: list[str] = []
    for _ in range(200):
        await page.keyboard.press("Tab")
        name = await _focused(page)
        if name in fields and name not in reached:
            reached.append(name)
        if reached and name == fields[-1]:
            break
    missing = [f for f in fields if f not in reached]
    names = await form.evaluate(
        "(form, keys) => keys.map((k) => { const e = form.querySelector(`[data-kbd='${k}']`); return e.id || e.name; })",
        missing,
    )
    assert missing == [], f"not reachable by Tab: {names}"

    # Enter on the submit button (the form's last field) sends the form empty.
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    errors = await page.evaluate(_ERRORS_JS)
    await shot(page, "errors")
    assert errors, "an empty form was accepted or showed no field error"
    for error in errors:
        assert error["text"], f"{error['field']} is marked invalid but says nothing next to it"
        assert error["gap"] is not None and error["gap"] < 120, f"{error['field']}: its error is far away"
        assert re.search("[\u4e00-\u9fff]", error["text"]), f"not in Chinese: {error['text']}"
    await check_accessibility(page)
