"""Every event renders in zh-CN and English; SMS texts fit one segment in Chinese."""

from __future__ import annotations

import pytest

from marketplace import i18n
from notifications import rendering, rules
from notifications.events import EVENTS, Event
from tests.notifications.samples import EN, RECIPIENT_ROLE, ZH

ROLES = {event: [RECIPIENT_ROLE.get(event)] for event in Event}
# Events a steward also receives for bookings made on a resident's behalf.
for event in (Event.ORDER_ACCEPTED, Event.WORKER_ON_THE_WAY, Event.ORDER_DONE):
    ROLES[event].append("steward")
CASES = [(event, role) for event in Event for role in ROLES[event]]


@pytest.mark.parametrize(("event", "role"), CASES)
def test_every_sms_fits_one_segment_in_chinese(event, role):
    text = rendering.render(event, "zh_CN", ZH[event], role=role, name="王秀英")
    assert text.sms.startswith("【云超市】")
    assert rules.sms_segments(text.sms) == 1, f"{len(text.sms)} characters: {text.sms}"
    # Written in Chinese, not an English fallback
    assert text.sms != rendering.render(event, "en", ZH[event], role=role).sms


@pytest.mark.parametrize(("event", "role"), CASES)
def test_english_sms_takes_at_most_two_segments(event, role):
    # The Chinese signature makes every text UCS-2, so English gets 70 characters a segment too.
    text = rendering.render(event, "en", EN[event], role=role)
    assert rules.sms_segments(text.sms) <= 2, f"{len(text.sms)} characters: {text.sms}"


@pytest.mark.parametrize("event", list(Event))
@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_every_event_has_a_title_a_body_and_a_text(event, locale):
    context = ZH[event] if locale == "zh_CN" else EN[event]
    text = rendering.render(event, locale, context, role=RECIPIENT_ROLE.get(event))
    assert text.title and text.body and text.sms
    assert "{{" not in text.body + text.title + text.sms
    assert "%(" not in text.body + text.title + text.sms
    for key in ("order_no", "warning_no", "code"):
        if key in context:
            assert context[key] in text.body


def test_the_steward_reads_whom_the_booking_was_for():
    resident = rendering.render(Event.ORDER_ACCEPTED, "zh_CN", ZH[Event.ORDER_ACCEPTED], role="resident")
    steward = rendering.render(Event.ORDER_ACCEPTED, "zh_CN", ZH[Event.ORDER_ACCEPTED], role="steward")
    assert "王秀英" not in resident.sms
    assert "您的" in resident.sms
    assert "为王秀英代订的陪诊" in steward.sms


def test_dates_and_times_follow_the_language_and_the_local_zone():
    zh = rendering.render(Event.ORDER_ACCEPTED, "zh_CN", ZH[Event.ORDER_ACCEPTED], role="resident")
    en = rendering.render(Event.ORDER_ACCEPTED, "en", EN[Event.ORDER_ACCEPTED], role="resident")
    assert "12月1日 14:30" in zh.sms  # 06:30 UTC is 14:30 in Nanjing
    assert "Dec 1 14:30" in en.sms
    credits = rendering.render(Event.CREDITS_GRANTED, "zh_CN", ZH[Event.CREDITS_GRANTED])
    assert credits.sms == "【云超市】2026年12月服务点数120点已到账，余额185点。"


def test_text_is_not_html_escaped():
    context = {**ZH[Event.ORDER_ACCEPTED], "provider": "A&B <社工>"}
    text = rendering.render(Event.ORDER_ACCEPTED, "zh_CN", context, role="resident")
    assert "A&B <社工>" in text.sms
    assert "A&B <社工>" in text.body


def test_catalog_strings_in_the_context_are_translated_for_the_recipient():
    # "Resident" is a message id of the shell's catalog; a category name defined with N_ works alike.
    context = {**ZH[Event.ORDER_DONE], "service": "Resident"}
    assert "居民" in rendering.render(Event.ORDER_DONE, "zh_CN", context).sms
    assert "Resident" in rendering.render(Event.ORDER_DONE, "en", context).sms


def test_rendering_leaves_the_callers_language_alone():
    token = i18n.current_locale.set("en")
    try:
        rendering.render(Event.ORDER_DONE, "zh_CN", ZH[Event.ORDER_DONE])
        assert i18n.current_locale.get() == "en"
    finally:
        i18n.current_locale.reset(token)


def test_the_email_wraps_the_body_with_a_greeting_and_the_settings_link():
    text = rendering.render(Event.ORDER_ESCALATED, "en", EN[Event.ORDER_ESCALATED], role="steward")
    mail = rendering.render_email(text, "en", name="Li Xiaoyan", link="/steward/orders/42")
    assert mail.startswith("Hello Li Xiaoyan,")
    assert text.body in mail
    assert "Open: /steward/orders/42" in mail
    assert "/notifications/preferences" in mail


def test_every_event_in_the_catalogue_has_a_template():
    assert set(EVENTS) == set(Event) == set(ZH)
