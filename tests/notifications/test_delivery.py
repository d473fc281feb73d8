"""Delivery through the real queue: each channel delivers, retries, dedupe, quiet hours, language.

Runs on both backends: SQLite with the in-process broker, and PostgreSQL with Redis.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from marketplace import accounts, clock, db, outbox
from marketplace.broker import broker
from marketplace.tables import JobFailure, OutboxMessage, User
from notifications import services, signing
from notifications.events import EVENTS, Channel, Event
from notifications.tables import Delivery, InboxItem, Notification, Preference, SandboxSms
from tests.conftest import run_jobs
from tests.notifications.samples import EN, RECIPIENT_ROLE, ZH


async def send(event: Event, recipients: list, context: dict | None = None, *, key: str = "k1", urgent=False):
    async with db.atomic():
        return await services.notify(
            event, recipients, context if context is not None else ZH[event], dedupe_key=key, urgent=urgent
        )


async def deliveries(**where) -> list[dict]:
    rows = await Delivery.select().order_by(Delivery.id)
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


async def sms_texts() -> list[str]:
    return [r["text"] for r in await SandboxSms.select(SandboxSms.text).order_by(SandboxSms.id)]


# -- every event reaches its recipient -----------------------------------------------------------


@pytest.mark.parametrize("event", [e for e in Event if not EVENTS[e].phone_only])
async def test_every_event_reaches_the_inbox_and_the_phone(event, worker, make_user, daytime):
    user = await make_user(RECIPIENT_ROLE[event])
    assert await send(event, [user["id"]])
    await run_jobs(worker)

    item = await InboxItem.select().where(InboxItem.user == user["id"]).first()
    assert item["title"] and item["read_at"] is None
    assert item["link"] == ZH[event].get("link", "")
    assert await services.unread_count(user["id"]) == 1
    assert {d["status"] for d in await deliveries()} == {"sent"}
    sms = await SandboxSms.select().first()
    if Channel.SMS not in EVENTS[event].default:  # e-mail only, and nobody set an address
        assert sms is None
        return
    assert sms["phone"] == user["phone"]
    assert sms["text"].startswith("【云超市】")


async def test_an_activation_code_goes_to_a_phone_without_an_account(worker, daytime):
    assert await send(Event.ACTIVATION_CODE, ["+86 139-0000-1234"])
    await run_jobs(worker)
    assert await sms_texts() == ["【云超市】您的激活码为730415，10分钟内有效，请勿告诉他人。"]
    assert (await SandboxSms.select().first())["phone"] == "13900001234"
    assert await InboxItem.count() == 0
    assert [(d["channel"], d["status"]) for d in await deliveries()] == [("sms", "sent")]


async def test_callers_mistakes_are_refused_at_once(make_user):
    user = await make_user("resident")
    with pytest.raises(ValueError, match="missing"):
        await send(Event.ORDER_DONE, [user["id"]], {"order_no": "1"})
    with pytest.raises(ValueError, match="phone number"):
        await send(Event.ACTIVATION_CODE, [user["id"]])
    with pytest.raises(ValueError, match="11-digit"):
        await send(Event.ACTIVATION_CODE, ["12345"])
    with pytest.raises(ValueError, match="unknown event"):
        await send("order_teleported", [user["id"]], {})
    assert await Notification.count() == 0


async def test_nothing_is_asked_for_when_the_callers_transaction_rolls_back(make_user):
    user = await make_user("resident")
    with pytest.raises(RuntimeError):
        async with db.atomic():
            await services.notify(Event.ORDER_DONE, [user["id"]], ZH[Event.ORDER_DONE], dedupe_key="x")
            raise RuntimeError("the order change failed")
    assert await Notification.count() == 0
    assert await OutboxMessage.count() == 0


# -- language -------------------------------------------------------------------------------------


async def test_each_recipient_reads_their_own_language(worker, make_user, daytime):
    zh = await make_user("resident")
    en = await make_user("resident")
    await accounts.set_locale(en["id"], "en")
    await send(Event.ORDER_DONE, [zh["id"], en["id"]], EN[Event.ORDER_DONE])
    await run_jobs(worker)

    titles = {r["user"]: r["title"] for r in await InboxItem.select()}
    assert titles == {zh["id"]: "服务已完成：Meals", en["id"]: "Service done: Meals"}
    by_phone = {r["phone"]: r["text"] for r in await SandboxSms.select()}
    assert by_phone[zh["phone"]].startswith("【云超市】您的Meals服务已完成")
    assert (
        by_phone[en["phone"]]
        == "【云超市】Your Meals service is done. Please confirm and rate it in the app."
    )


# -- dedupe ---------------------------------------------------------------------------------------


async def test_asking_twice_reaches_the_person_once(worker, make_user, daytime):
    user = await make_user("resident")
    assert len(await send(Event.ORDER_ACCEPTED, [user["id"], user["id"]], key="order:7:accepted")) == 1
    assert await send(Event.ORDER_ACCEPTED, [user["id"]], key="order:7:accepted") == []
    await run_jobs(worker)
    assert await InboxItem.count() == 1
    assert len(await sms_texts()) == 1
    # Another occurrence of the same event is another message
    assert await send(Event.ORDER_ACCEPTED, [user["id"]], key="order:8:accepted")


async def test_a_dispatch_delivered_twice_by_the_queue_reaches_the_person_once(worker, make_user, daytime):
    user = await make_user("resident")
    await send(Event.ORDER_DONE, [user["id"]])
    await outbox.relay_once()
    (row,) = await OutboxMessage.select()
    broker.enqueue(outbox._to_message(row))  # the broker hands out the same message again
    await run_jobs(worker)
    assert await InboxItem.count() == 1
    assert len(await sms_texts()) == 1
    assert len(await deliveries()) == 2  # inbox and SMS, once each


async def test_a_delivery_run_twice_at_the_same_time_sends_once(
    worker, make_user, daytime, receiver, configure
):
    configure(CLOUDMARKET_SMS_GATEWAY_URL=receiver.url)
    receiver.delay = 0.5  # a slow gateway, so that both runs overlap
    user = await make_user("resident")
    await send(Event.ORDER_DONE, [user["id"]])
    await services.dispatch([(await Notification.select().first())["id"]])
    await outbox.relay_once()  # hands both the dispatch and the SMS delivery to the broker
    (sms,) = await deliveries(channel="sms")
    (row,) = [r for r in await OutboxMessage.select() if json.loads(r["args"]) == [sms["id"]]]
    broker.enqueue(outbox._to_message(row))  # the same delivery, a second time, at once
    await run_jobs(worker)
    assert len(receiver.requests) == 1
    assert (await deliveries(channel="sms"))[0]["attempts"] == 1


# -- retries --------------------------------------------------------------------------------------


async def test_a_failing_gateway_is_retried_with_backoff_until_it_answers(
    worker, make_user, daytime, receiver, configure
):
    secret = "gateway-shared-secret"
    configure(CLOUDMARKET_SMS_GATEWAY_URL=receiver.url, CLOUDMARKET_SMS_GATEWAY_SECRET=secret)
    receiver.answers = [500, 503]
    user = await make_user("resident")
    await send(Event.CONFIRMATION_CODE, [user["id"]])
    await run_jobs(worker)

    (sms,) = await deliveries(channel="sms")
    assert (sms["status"], sms["attempts"], sms["last_error"]) == ("retrying", 1, "HTTP 500 busy")
    assert sms["next_at"] == clock.now() + timedelta(seconds=30)
    clock.advance(timedelta(seconds=29))
    await run_jobs(worker)
    assert len(receiver.requests) == 1  # not before its time
    clock.advance(timedelta(seconds=1))
    await run_jobs(worker)
    assert (await deliveries(channel="sms"))[0]["status"] == "retrying"
    clock.advance(timedelta(minutes=2))
    await run_jobs(worker)

    (sms,) = await deliveries(channel="sms")
    assert (sms["status"], sms["attempts"], sms["provider_ref"]) == ("sent", 3, "gw-3")
    assert [r.status for r in receiver.requests] == [500, 503, 200]
    # Every try is the same message: one id, so a gateway can drop repeats; each one signed
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    for r in receiver.requests:
        assert signing.verify(secret, r.headers, r.body, clock.now())
    body = receiver.requests[-1].json()
    assert body["phone"] == user["phone"]
    assert body["params"]["code"] == "482913"
    assert body["text"].startswith("【云超市】您的保洁确认码为482913")
    assert await SandboxSms.count() == 0
    assert await JobFailure.count() == 0  # the gateway's failures are ours to retry, not Dramatiq's


async def test_a_gateway_that_refuses_the_message_fails_it_at_once(
    worker, make_user, daytime, receiver, configure
):
    configure(CLOUDMARKET_SMS_GATEWAY_URL=receiver.url, CLOUDMARKET_SMS_TEMPLATES="order_done=SMS_900")
    receiver.answers = [400]
    user = await make_user("resident")
    await send(Event.ORDER_DONE, [user["id"]])
    await run_jobs(worker)
    (sms,) = await deliveries(channel="sms")
    assert (sms["status"], sms["attempts"], sms["last_error"]) == ("failed", 1, "HTTP 400 busy")
    assert receiver.requests[0].json()["template"] == "SMS_900"


async def test_after_the_last_attempt_the_delivery_fails_and_an_admin_can_send_it_again(
    worker, make_user, logged_in, daytime, receiver, configure
):
    configure(CLOUDMARKET_SMS_GATEWAY_URL=receiver.url, CLOUDMARKET_NOTIFY_MAX_ATTEMPTS=2)
    receiver.answers = [502, 502]
    user = await make_user("resident")
    await send(Event.ORDER_DONE, [user["id"]])
    await run_jobs(worker)
    clock.advance(timedelta(seconds=30))
    await run_jobs(worker)
    (sms,) = await deliveries(channel="sms")
    assert (sms["status"], sms["attempts"], sms["last_error"]) == ("failed", 2, "HTTP 502 busy")

    admin, _ = await logged_in("admin")
    page = await admin.get("/admin/notifications/deliveries?status=failed")
    assert "HTTP 502 busy" in page.text
    response = await admin.post_form(f"/admin/notifications/deliveries/{sms['id']}/retry")
    assert response.status_code == 303
    await run_jobs(worker)
    assert (await deliveries(channel="sms"))[0]["status"] == "sent"


async def test_an_activation_code_that_could_not_be_sent_in_time_is_given_up(
    worker, daytime, receiver, configure
):
    configure(CLOUDMARKET_SMS_GATEWAY_URL=receiver.url)
    receiver.answers = [503] * 20
    await send(Event.ACTIVATION_CODE, ["13900001234"])
    await run_jobs(worker)
    for _ in range(3):  # tries at 0, 10 and 20 minutes; at 30 the code has expired
        clock.advance(timedelta(minutes=10))
        await run_jobs(worker)
    (sms,) = await deliveries()
    assert sms["status"] == "failed"
    assert sms["last_error"] == "expired before it could be sent"
    assert len(receiver.requests) == 3


# -- quiet hours ----------------------------------------------------------------------------------


async def test_quiet_hours_hold_sms_until_morning_but_not_the_inbox(worker, make_user, logged_in):
    clock.freeze(clock.now().replace(year=2026, month=12, day=1, hour=15, minute=0, second=0, microsecond=0))
    client, user = await logged_in("resident")  # 23:00 in Nanjing; default quiet hours 22:00-07:00
    await send(Event.ORDER_DONE, [user["id"]])
    await run_jobs(worker)

    assert await InboxItem.count() == 1
    (sms,) = await deliveries(channel="sms")
    assert sms["status"] == "deferred"
    assert sms["next_at"].astimezone(clock.local_zone()).strftime("%m-%d %H:%M") == "12-02 07:00"
    assert await SandboxSms.count() == 0
    assert 'class="count"' in (await client.get("/inbox")).text

    clock.advance(timedelta(hours=7, minutes=59))  # 06:59
    await run_jobs(worker)
    assert await SandboxSms.count() == 0
    clock.advance(timedelta(minutes=1))  # 07:00
    await run_jobs(worker)
    assert await SandboxSms.count() == 1
    assert (await deliveries(channel="sms"))[0]["status"] == "sent"


async def test_urgent_messages_and_codes_come_through_quiet_hours(worker, make_user):
    clock.freeze(clock.now().replace(year=2026, month=12, day=1, hour=15, minute=0, second=0, microsecond=0))
    steward = await make_user("steward")
    resident = await make_user("resident")
    await send(Event.ORDER_ESCALATED, [steward["id"]], urgent=True)  # a level 1 order
    await send(Event.CONFIRMATION_CODE, [resident["id"]])  # codes are always urgent
    await send(Event.ORDER_DONE, [resident["id"]])  # not urgent: waits
    await run_jobs(worker)
    assert sorted(r["phone"] for r in await SandboxSms.select()) == sorted(
        [steward["phone"], resident["phone"]]
    )
    assert [d["event"] for d in await deliveries(status="deferred")] == ["order_done"]


async def test_own_quiet_hours_and_none(worker, make_user, logged_in):
    clock.freeze(clock.now().replace(year=2026, month=12, day=1, hour=5, minute=0, second=0, microsecond=0))
    client, user = await logged_in("resident")  # 13:00 in Nanjing
    response = await client.post_form(
        "/notifications/preferences",
        {
            "events": "order_done",
            "ch.order_done.sms": "on",
            "quiet_enabled": "on",
            "quiet_start": "12:30",
            "quiet_end": "14:00",
        },
    )
    assert response.status_code == 303
    await send(Event.ORDER_DONE, [user["id"]])
    await run_jobs(worker)
    assert (await deliveries(channel="sms"))[0]["status"] == "deferred"

    await client.post_form("/notifications/preferences", {"events": "order_done", "ch.order_done.sms": "on"})
    await send(Event.ORDER_DONE, [user["id"]], key="k2")
    await run_jobs(worker)
    assert await SandboxSms.count() == 1  # no quiet hours any more: the second came at once


# -- preferences choose the channels --------------------------------------------------------------


async def test_a_channel_turned_off_is_not_used(worker, logged_in, daytime):
    client, user = await logged_in("resident")
    await client.post_form("/notifications/preferences", {"events": "order_done credits_granted"})
    await send(Event.ORDER_DONE, [user["id"]])
    await send(Event.ORDER_ACCEPTED, [user["id"]])  # not on the form: defaults
    await run_jobs(worker)
    assert {(d["event"], d["channel"]) for d in await deliveries()} == {
        ("order_done", "inbox"),
        ("order_accepted", "inbox"),
        ("order_accepted", "sms"),
    }


async def test_closed_accounts_get_nothing(worker, make_user, daytime):
    user = await make_user("resident")
    await User.update({User.is_active: False}).where(User.id == user["id"])
    await send(Event.ORDER_DONE, [user["id"]])
    await run_jobs(worker)
    assert await Delivery.count() == 0
    assert (await Notification.select().first())["dispatched_at"] is not None


# -- e-mail ---------------------------------------------------------------------------------------


async def test_email_reaches_a_real_smtp_server(worker, make_user, daytime, mailbox, configure):
    configure(CLOUDMARKET_BASE_URL="https://cs.example.gov.cn")
    steward = await make_user("steward", name="李晓燕")
    await Preference.insert(Preference(user=steward["id"], email="li.xiaoyan@example.cn", channels="{}"))
    await send(Event.ORDER_ESCALATED, [steward["id"]])
    await run_jobs(worker)

    (message,) = mailbox.messages
    assert mailbox.recipients == [["li.xiaoyan@example.cn"]]
    assert message["Subject"] == "订单 20261201-0042 待人工派单"
    assert message["From"] == "云超市 <noreply@cs.example.gov.cn>"
    body = message.get_content()
    assert body.startswith("李晓燕，您好：")
    assert "1级订单 20261201-0042（维修，燕子矶街道和畅社区）无服务方接单" in body
    assert "https://cs.example.gov.cn/steward/orders/42" in body
    assert "https://cs.example.gov.cn/notifications/preferences" in body
    (mail,) = await deliveries(channel="email")
    assert mail["status"] == "sent"
    assert mail["provider_ref"] == message["Message-ID"].strip()


async def test_without_a_mail_server_nobody_gets_email(worker, make_user, daytime):
    steward = await make_user("steward")
    await Preference.insert(Preference(user=steward["id"], email="li@example.cn", channels="{}"))
    await send(Event.ORDER_ESCALATED, [steward["id"]])
    await run_jobs(worker)
    assert [d["channel"] for d in await deliveries()] == ["inbox", "sms"]


# -- webhooks -------------------------------------------------------------------------------------


async def test_a_webhook_receiver_verifies_the_signature(worker, make_user, logged_in, receiver, configure):
    configure(CLOUDMARKET_QUIET_HOURS="")  # the real clock: the receiver checks the timestamp
    admin, _ = await logged_in("admin")
    page = await admin.post_form(
        "/admin/notifications/webhooks",
        {"name": "微信桥", "url": receiver.url, "event.order_accepted": "on", "include_phone": "on"},
    )
    assert page.status_code == 200
    secret = page.text.split('<code class="token">')[1].split("</code>")[0]
    assert secret.startswith("whsec_")
    receiver.secret = secret

    resident = await make_user("resident")
    await send(Event.ORDER_ACCEPTED, [resident["id"]], key="order:1:accepted")
    await send(Event.ORDER_DONE, [resident["id"]], key="order:1:done")  # not subscribed
    await run_jobs(worker)

    (request,) = receiver.requests
    assert request.verified is True
    payload = request.json()
    assert payload["type"] == "order_accepted"
    data = payload["data"]
    assert data["recipient"] == {"user_id": resident["id"], "role": "resident", "phone": resident["phone"]}
    assert data["title"] == "订单已接单：陪诊"
    assert data["context"]["when"] == "2026-12-01T06:30:00+00:00"
    assert data["link"] == "/orders/42"
    (hook,) = await deliveries(channel="webhook")
    assert (hook["status"], hook["provider_ref"]) == ("sent", "HTTP 200")


async def test_a_webhook_signed_with_another_secret_is_refused_by_the_receiver(
    worker, make_user, logged_in, receiver, configure
):
    configure(CLOUDMARKET_QUIET_HOURS="")
    admin, admin_user = await logged_in("admin")
    await admin.post_form("/admin/notifications/webhooks", {"name": "bridge", "url": receiver.url})
    receiver.secret = signing.new_secret()  # the receiver was given another secret
    await send(Event.CREDITS_GRANTED, [admin_user["id"]])
    await run_jobs(worker)
    assert receiver.requests[0].verified is False
    (hook,) = await deliveries(channel="webhook")
    assert (hook["status"], hook["last_error"]) == ("failed", "HTTP 401 bad_signature")


# -- codes are not kept once delivered ------------------------------------------------------------


async def test_the_code_is_blanked_in_the_stored_request_once_delivered(worker, make_user, daytime):
    user = await make_user("resident")
    await send(Event.CONFIRMATION_CODE, [user["id"]])
    await run_jobs(worker)
    stored = await Notification.select().first()
    assert "482913" not in stored["context"]
    assert "482913" in (await InboxItem.select().first())["body"]  # the resident still reads it


# -- lost messages --------------------------------------------------------------------------------


async def test_a_delivery_whose_message_was_lost_is_sent_by_the_sweeper(worker, make_user, daytime):
    user = await make_user("resident")
    await send(Event.ORDER_DONE, [user["id"]])
    await services.dispatch([(await Notification.select().first())["id"]])
    await OutboxMessage.delete(force=True)  # the message to deliver is lost
    await run_jobs(worker)
    assert await SandboxSms.count() == 0

    clock.advance(timedelta(minutes=6))
    await outbox.schedule_due()  # the periodic sweep runs
    await run_jobs(worker)
    assert await SandboxSms.count() == 1
    await outbox.schedule_due()
    await run_jobs(worker)
    assert await SandboxSms.count() == 1


async def test_many_recipients_at_once(worker, make_user, daytime):
    users = [await make_user("resident") for _ in range(30)]
    ids = await send(Event.CREDITS_GRANTED, [u["id"] for u in users], key="credits:2026-12")
    assert len(ids) == 30
    await run_jobs(worker)
    assert await InboxItem.count() == 30
    assert await SandboxSms.count() == 30
    assert not await deliveries(status="queued")
