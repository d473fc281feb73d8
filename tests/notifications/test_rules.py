"""The delivery rules, without a database: channels, quiet hours, retries, SMS length, context."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifications import rules, signing
from notifications.events import EVENTS, Channel, Event

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=SHANGHAI)


# -- channels -------------------------------------------------------------------------------------


def test_defaults_apply_until_the_user_chooses():
    spec = EVENTS[Event.ORDER_ESCALATED]
    assert rules.channels_for(spec, None, has_email=True, email_enabled=True) == {
        Channel.INBOX,
        Channel.SMS,
        Channel.EMAIL,
    }
    chosen = {"order_escalated": ["email"]}
    assert rules.channels_for(spec, chosen, has_email=True, email_enabled=True) == {
        Channel.INBOX,
        Channel.EMAIL,
    }


def test_the_inbox_always_receives_and_nothing_else_when_all_is_turned_off():
    spec = EVENTS[Event.ORDER_DONE]
    assert rules.channels_for(spec, {"order_done": []}, has_email=True, email_enabled=True) == {Channel.INBOX}


def test_required_channels_cannot_be_turned_off():
    spec = EVENTS[Event.CONFIRMATION_CODE]
    got = rules.channels_for(spec, {"confirmation_code": []}, has_email=False, email_enabled=True)
    assert got == {Channel.INBOX, Channel.SMS}


def test_email_needs_an_address_and_a_mail_server():
    spec = EVENTS[Event.VERIFICATION_OVERDUE]
    assert Channel.EMAIL not in rules.channels_for(spec, None, has_email=False, email_enabled=True)
    assert Channel.EMAIL not in rules.channels_for(spec, None, has_email=True, email_enabled=False)
    assert Channel.EMAIL in rules.channels_for(spec, None, has_email=True, email_enabled=True)


def test_unknown_channel_names_in_stored_choices_are_ignored():
    spec = EVENTS[Event.ORDER_DONE]
    got = rules.channels_for(
        spec, {"order_done": ["sms", "fax", "inbox"]}, has_email=True, email_enabled=True
    )
    assert got == {Channel.INBOX, Channel.SMS}


def test_a_phone_number_only_gets_sms():
    spec = EVENTS[Event.ACTIVATION_CODE]
    assert rules.channels_for(spec, None, has_email=True, email_enabled=True) == {Channel.SMS}


# -- quiet hours ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "until"),
    [
        (local(21, 59), None),
        (local(22, 0), local(7, 0, day=2)),
        (local(23, 30), local(7, 0, day=2)),
        (local(0, 15, day=2), local(7, 0, day=2)),
        (local(6, 59, day=2), local(7, 0, day=2)),
        (local(7, 0, day=2), None),
        (local(12, 0), None),
    ],
)
def test_quiet_hours_across_midnight(at, until):
    assert rules.quiet_until(at.astimezone(UTC), time(22), time(7), SHANGHAI) == until


def test_quiet_hours_within_one_day():
    assert rules.quiet_until(local(13, 0), time(12, 30), time(14), SHANGHAI) == local(14, 0)
    assert rules.quiet_until(local(14, 0), time(12, 30), time(14), SHANGHAI) is None


def test_no_quiet_hours():
    assert rules.quiet_until(local(23), None, None, SHANGHAI) is None
    assert rules.quiet_until(local(23), time(7), time(7), SHANGHAI) is None


def test_parsing_quiet_hours():
    assert rules.parse_quiet_hours("22:00-07:00") == (time(22), time(7))
    assert rules.parse_quiet_hours("") is None
    assert rules.parse_quiet_hours("25:00-07:00") is None
    assert rules.parse_quiet_hours("07:00-07:00") is None
    assert rules.parse_time("7:05") == time(7, 5)
    assert rules.parse_time("7h") is None


# -- retries --------------------------------------------------------------------------------------


def test_backoff_grows_and_is_capped():
    delays = [rules.retry_delay(n) for n in range(1, 7)]
    assert delays[:4] == [
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(minutes=8),
        timedelta(minutes=32),
    ]
    assert delays[4] == delays[5] == timedelta(hours=1)


def test_a_gateway_asking_for_longer_is_obeyed():
    assert rules.retry_delay(1, timedelta(minutes=5)) == timedelta(minutes=5)
    assert rules.retry_delay(3, timedelta(seconds=1)) == timedelta(minutes=8)
    assert rules.retry_delay(1, timedelta(days=1)) == timedelta(hours=1)


def test_after_failure():
    now = local(10)
    again = rules.after_failure(attempts=1, max_attempts=3, now=now, error="HTTP 503", permanent=False)
    assert again == rules.Outcome("retrying", now + timedelta(seconds=30), "HTTP 503")
    assert (
        rules.after_failure(attempts=3, max_attempts=3, now=now, error="x", permanent=False).status
        == "failed"
    )
    assert (
        rules.after_failure(attempts=1, max_attempts=3, now=now, error="x", permanent=True).status == "failed"
    )
    expiring = rules.after_failure(
        attempts=1,
        max_attempts=6,
        now=now,
        error="HTTP 503",
        permanent=False,
        expires_at=now + timedelta(seconds=10),
    )
    assert expiring.status == "failed"
    assert "expired" in expiring.error


# -- SMS ------------------------------------------------------------------------------------------


def test_sms_segments():
    assert rules.sms_segments("a" * 160) == 1
    assert rules.sms_segments("a" * 161) == 2
    assert rules.sms_segments("a" * 306) == 2
    assert rules.sms_segments("{" * 80) == 1  # extension characters count twice
    assert rules.sms_segments("{" * 81) == 2
    assert rules.sms_segments("字" * 70) == 1
    assert rules.sms_segments("字" * 71) == 2
    assert rules.sms_segments("【云超市】" + "a" * 65) == 1  # one Chinese character makes it UCS-2
    assert rules.sms_segments("【云超市】" + "a" * 66) == 2


def test_template_codes():
    codes = rules.parse_template_codes(" new_offer=SMS_1, new_offer.en=SMS_2,broken, =x,order_done=SMS_3")
    assert codes == {"new_offer": "SMS_1", "new_offer.en": "SMS_2", "order_done": "SMS_3"}
    assert rules.template_code(codes, "new_offer", "en") == "SMS_2"
    assert rules.template_code(codes, "new_offer", "zh_CN") == "SMS_1"
    assert rules.template_code(codes, "sla_missed", "zh_CN") is None


# -- context --------------------------------------------------------------------------------------


def test_context_keeps_dates_and_datetimes():
    context = {
        "when": datetime(2026, 12, 1, 6, 30, tzinfo=UTC),
        "month": date(2026, 12, 1),
        "n": 3,
        "s": "保洁",
    }
    assert rules.decode_context(rules.encode_context(context)) == context


def test_naive_datetimes_and_unstorable_values_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        rules.encode_context({"when": datetime(2026, 12, 1, 6, 30)})
    with pytest.raises(TypeError):
        rules.encode_context({"x": object()})


def test_context_must_hold_the_events_keys_and_nothing_unknown():
    spec = EVENTS[Event.ACTIVATION_CODE]
    rules.check_context(spec, {"code": "123456", "minutes": 10})
    with pytest.raises(ValueError, match="missing \\['minutes'\\]"):
        rules.check_context(spec, {"code": "123456"})
    with pytest.raises(ValueError, match="unknown \\['phone'\\]"):
        rules.check_context(spec, {"code": "123456", "minutes": 10, "phone": "13800000000"})
    with pytest.raises(ValueError, match="link"):
        rules.check_context(spec, {"code": "1", "minutes": 1, "link": "https://evil.example/"})


def test_redact():
    assert rules.redact({"code": "482913", "service": "保洁"}, ["code"]) == {"code": "***", "service": "保洁"}


# -- signatures -----------------------------------------------------------------------------------


def test_signatures_verify_and_refuse_tampering_and_replays():
    secret = signing.new_secret()
    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    body = b'{"type":"order_done"}'
    headers = signing.headers(secret, "cm-nt-1", at, body)
    assert signing.verify(secret, headers, body, at + timedelta(minutes=4))
    assert not signing.verify(secret, headers, body + b" ", at)
    assert not signing.verify(signing.new_secret(), headers, body, at)
    assert not signing.verify(secret, headers, body, at + timedelta(minutes=6))
    assert not signing.verify(secret, {}, body, at)
