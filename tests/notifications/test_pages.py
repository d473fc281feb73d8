"""The pages and the API: inbox with its unread count, preferences, and the admin pages."""

from __future__ import annotations

import re

from marketplace import db
from marketplace.tables import AuditEvent
from notifications import services
from notifications.events import Event
from notifications.tables import Delivery, InboxItem, Preference, SandboxSms, WebhookSubscription
from tests.conftest import run_jobs
from tests.notifications.samples import ZH


async def send(event: Event, user_ids: list[int], *, key: str = "k1", context: dict | None = None) -> None:
    async with db.atomic():
        await services.notify(event, user_ids, context or ZH[event], dedupe_key=key)


def badge(html: str) -> str | None:
    match = re.search(r'<span class="count"[^>]*>(\d+)</span>', html)
    return match.group(1) if match else None


# -- the inbox ------------------------------------------------------------------------------------


async def test_the_unread_count_shows_on_every_page_and_falls_as_messages_are_read(
    worker, logged_in, daytime
):
    client, user = await logged_in("resident")
    assert badge((await client.get("/")).text) is None
    await send(Event.ORDER_ACCEPTED, [user["id"]], key="a")
    await send(Event.ORDER_DONE, [user["id"]], key="b")
    await run_jobs(worker)

    home = await client.get("/")
    assert badge(home.text) == "2"
    assert 'aria-label="2 条未读"' in home.text
    page = await client.get("/inbox")
    assert "订单已接单：陪诊" in page.text and "服务已完成：助餐" in page.text
    assert badge(page.text) == "2"

    first = (await InboxItem.select().where(InboxItem.event == "order_done").first())["id"]
    response = await client.post_form(f"/inbox/{first}/read")
    assert (response.status_code, response.headers["location"]) == (303, "/inbox")
    assert badge((await client.get("/inbox")).text) == "1"
    response = await client.post_form("/inbox/read-all")
    assert badge((await client.get("/")).text) is None
    assert "所有消息都已读" in (await client.get("/inbox?unread=true")).text


async def test_opening_a_message_marks_it_read_and_follows_its_link(worker, logged_in, daytime):
    client, user = await logged_in("resident")
    await send(Event.ORDER_ACCEPTED, [user["id"]])
    await run_jobs(worker)
    item = await InboxItem.select().first()
    response = await client.post_form(f"/inbox/{item['id']}/open")
    assert (response.status_code, response.headers["location"]) == (303, "/orders/42")
    assert (await InboxItem.select().first())["read_at"] is not None


async def test_nobody_reads_or_marks_another_persons_messages(worker, logged_in, daytime):
    owner, user = await logged_in("resident")
    other, _ = await logged_in("resident")
    await send(Event.ORDER_DONE, [user["id"]])
    await run_jobs(worker)
    item = await InboxItem.select().first()
    assert "助餐" not in (await other.get("/inbox")).text
    assert (await other.post_form(f"/inbox/{item['id']}/read")).status_code == 404
    api = await other.post(f"/api/v1/inbox/{item['id']}/read", headers={"x-csrftoken": await other.csrf()})
    assert api.status_code == 404
    assert (await InboxItem.select().first())["read_at"] is None


async def test_the_inbox_needs_a_login_and_is_empty_at_first(client, logged_in):
    response = await client.get("/inbox")
    assert response.status_code in (302, 303)
    assert response.headers["location"].startswith("/login")
    resident, _ = await logged_in("resident")
    assert "还没有消息" in (await resident.get("/inbox")).text


async def test_the_inbox_pages(worker, logged_in, daytime):
    client, user = await logged_in("steward")
    for n in range(35):
        context = {**ZH[Event.WARNING_ASSIGNED], "warning_no": f"YJ-{n:03d}"}
        await send(Event.WARNING_ASSIGNED, [user["id"]], key=f"w{n}", context=context)
    await run_jobs(worker)
    newest_first = [
        r["title"] for r in await InboxItem.select(InboxItem.title).order_by(InboxItem.id, ascending=False)
    ]
    first = (await client.get("/inbox")).text
    second = (await client.get("/inbox?page=2")).text
    assert all(title in first and title not in second for title in newest_first[:30])
    assert all(title in second and title not in first for title in newest_first[30:])
    assert "第 1 页，共 2 页" in first


# -- preferences ----------------------------------------------------------------------------------


async def test_preferences_show_the_roles_events_and_save(logged_in):
    client, user = await logged_in("resident")
    page = (await client.get("/notifications/preferences")).text
    assert "服务确认码" in page and "新派单" not in page  # offers are for providers
    assert 'value="22:00"' in page and 'value="07:00"' in page
    response = await client.post_form(
        "/notifications/preferences",
        {
            "events": "order_done confirmation_code credits_granted",
            "ch.order_done.email": "on",
            "email": "wang@example.cn",
            "quiet_enabled": "on",
            "quiet_start": "21:30",
            "quiet_end": "06:30",
        },
    )
    assert (response.status_code, response.headers["location"]) == (
        303,
        "/notifications/preferences?saved=true",
    )
    pref = await Preference.select().where(Preference.user == user["id"]).first()
    assert (pref["email"], pref["quiet_start"], pref["quiet_end"]) == ("wang@example.cn", "21:30", "06:30")
    saved = await services.get_preferences(await _principal(user["id"]))
    choices = {row.event: row.channels for row in saved.events}
    assert choices["order_done"] == {"sms": False, "email": True}
    assert choices["confirmation_code"]["sms"] is True  # required: cannot be turned off
    assert choices["credits_granted"] == {"sms": False, "email": False}
    assert choices["order_accepted"] == {"sms": True, "email": False}  # untouched: defaults
    assert "设置已保存" in (await client.get("/notifications/preferences?saved=true")).text


async def test_preferences_errors_are_shown_next_to_the_fields(logged_in):
    client, user = await logged_in("resident")
    response = await client.post_form(
        "/notifications/preferences",
        {
            "events": "",
            "email": "not-an-address",
            "quiet_enabled": "on",
            "quiet_start": "25:00",
            "quiet_end": "07:00",
        },
    )
    assert response.status_code == 422
    assert 'id="email-error"' in response.text and 'aria-invalid="true"' in response.text
    assert 'id="quiet_start-error"' in response.text
    assert 'value="not-an-address"' in response.text
    assert await Preference.count() == 0


async def _principal(user_id: int):
    from marketplace import accounts

    return await accounts.principal_for_user(user_id)


# -- admin pages ----------------------------------------------------------------------------------


async def test_admin_pages_are_for_admins(logged_in):
    steward, _ = await logged_in("steward")
    for path in (
        "/admin/notifications/deliveries",
        "/admin/notifications/webhooks",
        "/api/v1/notifications/deliveries",
    ):
        assert (await steward.get(path)).status_code == 403, path


async def test_the_delivery_log_filters_and_pages(worker, logged_in, make_user, daytime):
    admin, _ = await logged_in("admin")
    users = [await make_user("resident", name=f"居民{n}") for n in range(30)]
    await send(Event.CREDITS_GRANTED, [u["id"] for u in users])
    await run_jobs(worker)
    assert await Delivery.count() == 60  # inbox and SMS each

    page = (await admin.get("/admin/notifications/deliveries")).text
    assert "共 60 条发送记录" in page
    assert "第 1 页，共 2 页" in page or "Page 1 of 2" in page
    sms_only = (await admin.get("/admin/notifications/deliveries?channel=sms&status=sent")).text
    assert "共 30 条发送记录" in sms_only
    assert "139****" in sms_only  # phone numbers are masked
    one = (await admin.get(f"/admin/notifications/deliveries?user_id={users[3]['id']}")).text
    assert "共 2 条发送记录" in one and "居民3" in one
    assert "共 0 条" in (await admin.get("/admin/notifications/deliveries?event=order_done")).text

    api = (await admin.get("/api/v1/notifications/deliveries?channel=sms&per_page=10&page=2")).json()
    assert (api["total"], api["page"], len(api["items"])) == (30, 2, 10)
    assert {i["status"] for i in api["items"]} == {"sent"}


async def test_webhooks_are_added_paused_resumed_and_deleted(logged_in):
    admin, _ = await logged_in("admin")
    bad = await admin.post_form("/admin/notifications/webhooks", {"name": "", "url": "http://10.1.2.3/hook"})
    assert bad.status_code == 422
    assert 'id="name-error"' in bad.text and 'id="url-error"' in bad.text
    assert await WebhookSubscription.count() == 0

    ok = await admin.post_form(
        "/admin/notifications/webhooks",
        {"name": "微信桥", "url": "https://bridge.example.cn/cm", "event.sla_missed": "on"},
    )
    assert "whsec_" in ok.text
    hook = await WebhookSubscription.select().first()
    assert hook["events"] == "sla_missed"
    assert "whsec_" not in hook["secret"]  # stored encrypted
    assert services.decrypt_secret(hook["secret"]) in ok.text
    listing = (await admin.get("/admin/notifications/webhooks")).text
    assert "https://bridge.example.cn/cm" in listing and "whsec_" not in listing

    await admin.post_form(f"/admin/notifications/webhooks/{hook['id']}/disable")
    assert (await WebhookSubscription.select().first())["is_active"] is False
    await admin.post_form(f"/admin/notifications/webhooks/{hook['id']}/enable")
    assert (await WebhookSubscription.select().first())["is_active"] is True
    confirm = await admin.get(f"/admin/notifications/webhooks/{hook['id']}/delete")
    assert "此操作无法撤销" in confirm.text
    await admin.post_form(f"/admin/notifications/webhooks/{hook['id']}/delete")
    assert await WebhookSubscription.count() == 0
    actions = [
        r["action"]
        for r in await AuditEvent.select().where(AuditEvent.target_type == "webhook").order_by(AuditEvent.id)
    ]
    assert actions == [
        "notifications.webhook_created",
        "notifications.webhook_disabled",
        "notifications.webhook_enabled",
        "notifications.webhook_deleted",
    ]


async def test_the_sms_sandbox_page(worker, logged_in, make_client, configure, daytime):
    async with db.atomic():
        await services.notify(
            Event.ACTIVATION_CODE, ["13900001234"], ZH[Event.ACTIVATION_CODE], dedupe_key="a"
        )
        await services.notify(
            Event.ACTIVATION_CODE, ["13900005678"], ZH[Event.ACTIVATION_CODE], dedupe_key="b"
        )
    await run_jobs(worker)
    assert await SandboxSms.count() == 2

    configure(CLOUDMARKET_SMS_SANDBOX_PUBLIC="false")
    assert (await make_client().get("/notifications/sms-sandbox")).status_code == 404
    resident, _ = await logged_in("resident")
    assert (await resident.get("/notifications/sms-sandbox")).status_code == 404
    admin, _ = await logged_in("admin")
    page = await admin.get("/notifications/sms-sandbox?phone=139-0000-1234")
    assert "13900001234" in page.text and "13900005678" not in page.text
    assert "您的激活码为730415" in page.text

    configure(CLOUDMARKET_SMS_SANDBOX_PUBLIC="true")  # a demo on one's own machine: anyone may read it
    assert (await make_client().get("/notifications/sms-sandbox")).status_code == 200


async def test_menus_lead_to_the_inbox_and_the_admin_pages(logged_in):
    resident, _ = await logged_in("resident")
    home = (await resident.get("/")).text
    assert 'href="/inbox"' in home and 'href="/notifications/preferences"' in home
    assert "/admin/notifications" not in home
    admin, _ = await logged_in("admin")
    home = (await admin.get("/")).text
    for path in (
        "/admin/notifications/deliveries",
        "/admin/notifications/webhooks",
        "/notifications/sms-sandbox",
    ):
        assert f'href="{path}"' in home


# -- the API --------------------------------------------------------------------------------------


async def test_inbox_and_preferences_api(worker, logged_in, daytime):
    client, user = await logged_in("resident")
    await send(Event.ORDER_DONE, [user["id"]], key="a")
    await run_jobs(worker)
    await send(Event.ORDER_ACCEPTED, [user["id"]], key="b")  # the newer one
    await run_jobs(worker)
    csrf = {"x-csrftoken": await client.csrf()}

    assert (await client.get("/api/v1/inbox/unread-count")).json() == {"unread": 2}
    body = (await client.get("/api/v1/inbox?per_page=1")).json()
    assert (body["total"], body["unread"], len(body["items"])) == (2, 2, 1)
    assert body["items"][0]["title"] == "订单已接单：陪诊"
    item_id = body["items"][0]["id"]
    assert (await client.post(f"/api/v1/inbox/{item_id}/read", headers=csrf)).status_code == 204
    assert (await client.get("/api/v1/inbox?unread=true")).json()["total"] == 1
    assert (await client.post("/api/v1/inbox/read-all", headers=csrf)).json() == {"marked": 1}

    prefs = (await client.get("/api/v1/notifications/preferences")).json()
    assert prefs["quiet_start"] == "22:00"
    changed = await client.put(
        "/api/v1/notifications/preferences",
        json={"email": "", "quiet_start": "", "quiet_end": "", "channels": {"order_done": []}},
        headers=csrf,
    )
    assert changed.status_code == 200
    events = {e["event"]: e for e in changed.json()["events"]}
    assert events["order_done"]["channels"] == {"sms": False, "email": False}
    assert changed.json()["quiet_start"] == ""
    bad = await client.put(
        "/api/v1/notifications/preferences", json={"quiet_start": "7", "quiet_end": "8"}, headers=csrf
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"quiet_start", "quiet_end"}


async def test_the_event_catalogue_is_published(logged_in, client):
    resident, _ = await logged_in("resident")
    events = {e["event"]: e for e in (await resident.get("/api/v1/notifications/events")).json()}
    assert set(events) == {e.value for e in Event}
    assert events["confirmation_code"]["required"] == ["sms"]
    assert "code" in events["activation_code"]["keys"]
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/api/v1/inbox" in schema["paths"]
    assert "/api/v1/notifications/preferences" in schema["paths"]
