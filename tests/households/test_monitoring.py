"""Monitoring → warning → verification → handling, through the API, the pages and a real worker.

Runs on both backends: SQLite with the in-process broker, and PostgreSQL with Redis.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from households import events, handoffs, monitoring
from households.events import LevelChanged
from households.tables import (
    Community,
    Household,
    HouseholdEvent,
    HouseholdWarning,
    Member,
    Signal,
    Street,
    VerificationPhoto,
    WarningEvent,
)
from marketplace import accounts, clock, outbox
from marketplace.tables import AuditEvent
from notifications.tables import InboxItem, Notification
from tests.catalog_data import seed_catalog
from tests.conftest import run_jobs
from tests.helpers import make_id
from tests.households.conftest import ADMIN, member_data

NOON = datetime(2025, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 in Nanjing
BORN = date(1950, 6, 1)
ID_NUMBER = make_id(BORN, 11)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 200


@pytest.fixture
async def sender(make_client):
    """Another department's system, with a token allowed to send signals."""
    issued = await accounts.create_api_client("市医保局", ["signals:write"])
    return make_client(authorization=f"Bearer {issued.token}")


@pytest.fixture
async def household(community, make_household):
    """A household in the steward's community whose head has ID_NUMBER, registered by an admin (no steward)."""
    return await make_household(community, members=[member_data(name="王秀英", born=BORN, seq=11)])


def signal(event_id: str, kind: str = "accident", **fields) -> dict:
    return {"event_id": event_id, "kind": kind, "occurred_on": "2025-03-09", "id_number": ID_NUMBER, **fields}


def hospital(event_id: str, amount: float = 60_000, share: float = 0.5, **fields) -> dict:
    return signal(
        event_id, "hospital_bill", details={"amount": amount, "out_of_pocket_share": share}, **fields
    )


async def send(client, *items) -> dict:
    response = await client.post("/api/v1/signals", json={"signals": list(items)})
    assert response.status_code == 200, response.text
    return response.json()


async def warnings() -> list[dict]:
    return await HouseholdWarning.select().order_by(HouseholdWarning.id)


# -- the signal API ----------------------------------------------------------------------------------


async def test_signals_for_one_household_become_one_warning_and_a_resend_adds_nothing(sender, household):
    clock.freeze(NOON)
    code = (await Household.select(Household.code).where(Household.id == household).first())["code"]
    batch = [
        hospital("HOSP-1", amount=8_000, share=0.5),  # medium: a hospital bill
        signal("ACC-1", id_number=None, household_code=code),  # high, by household code
        signal("JOB-1", "job_loss"),
    ]
    body = await send(sender, *batch)
    assert [r["status"] for r in body["results"]] == ["accepted"] * 3
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (3, 0, 0)

    [warning] = await warnings()
    assert (warning["household"], warning["signal_count"], warning["severity"], warning["rule"]) == (
        household,
        3,
        "high",
        "accident",
    )
    assert warning["deadline_at"] == NOON + timedelta(hours=48)
    stored = await Signal.select().order_by(Signal.id)
    assert [(s["matched_by"], s["warning"], s["status"]) for s in stored] == [
        ("id_number", warning["id"], "matched"),
        ("household_code", warning["id"], "matched"),
        ("id_number", warning["id"], "matched"),
    ]
    # The ID number is kept encrypted, matched by its blind index, shown masked
    assert ID_NUMBER not in str(stored[0]["id_cipher"]) and stored[0]["id_masked"].endswith(ID_NUMBER[-4:])
    member = await Member.select(Member.id_index).where(Member.household == household).first()
    assert stored[0]["id_index"] == member["id_index"]

    # A resend of the same batch is recognised: nothing new
    again = await send(sender, *batch)
    assert [r["status"] for r in again["results"]] == ["duplicate"] * 3
    assert [r["signal_id"] for r in again["results"]] == [r["signal_id"] for r in body["results"]]
    assert await Signal.count() == 3 and len(await warnings()) == 1

    # A later signal within the window joins; after the window a new warning opens
    clock.advance(timedelta(hours=71))
    await send(sender, signal("FIRE-1", "disaster"))
    [joined] = await warnings()
    assert joined["signal_count"] == 4 and joined["deadline_at"] == NOON + timedelta(hours=48)
    clock.advance(timedelta(hours=2))
    await send(sender, signal("FIRE-2", "disaster"))
    assert [w["signal_count"] for w in await warnings()] == [4, 1]


async def test_the_signal_api_names_each_bad_input_precisely(sender, household):
    await send(sender, signal("E-1"), signal("E-0"))
    body = await send(
        sender,
        signal("E-2", "flood"),
        signal("E-3", id_number=ID_NUMBER[:-1] + ("0" if ID_NUMBER[-1] != "0" else "1")),
        signal("E-4"),
        signal("E-4", "job_loss"),
        signal("E-1", "job_loss"),  # this event id was used before, for an accident
        signal("E-0"),  # the same signal again: not an error
        {"kind": "accident", "occurred_on": "2025-03-09", "id_number": ID_NUMBER},
        hospital("E-5", share=1.5),
    )
    results = body["results"]
    assert [r["status"] for r in results] == [
        "rejected",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
        "duplicate",
        "rejected",
        "rejected",
    ]
    errors = [{e["field"]: e["message"] for e in r["errors"]} for r in results]
    assert (
        set(errors[0]) == {"kind"} and "'flood'" in errors[0]["kind"] and "hospital_bill" in errors[0]["kind"]
    )
    assert set(errors[1]) == {"id_number"} and "校验位" in errors[1]["id_number"]
    assert set(errors[3]) == {"event_id"} and "2" in errors[3]["event_id"]  # first at index 2
    first = await Signal.select(Signal.id).where(Signal.event_id == "E-1").first()
    assert set(errors[4]) == {"event_id"} and f"编号 {first['id']}" in errors[4]["event_id"]
    assert set(errors[6]) == {"event_id"}
    assert set(errors[7]) == {"details.out_of_pocket_share"}
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (1, 1, 6)

    too_many = await sender.post("/api/v1/signals", json={"signals": [signal(f"B-{n}") for n in range(1001)]})
    assert too_many.status_code == 422
    problem = too_many.json()
    assert problem["errors"][0]["field"] == "signals" and "1,001" in problem["errors"][0]["message"]
    empty = await sender.post("/api/v1/signals", json={"signals": []})
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "signals"
    assert await Signal.count() == 3


async def test_only_a_token_with_the_signals_scope_may_send(make_client, logged_in, household):
    nobody = make_client(authorization="Bearer not-a-token")
    assert (await nobody.post("/api/v1/signals", json={"signals": [signal("X")]})).status_code == 401
    other = await accounts.create_api_client("别的系统", ["households:read"])
    denied = make_client(authorization=f"Bearer {other.token}")
    assert (await denied.post("/api/v1/signals", json={"signals": [signal("X")]})).status_code == 403
    admin, _ = await logged_in("admin")
    token = await admin.csrf()
    response = await admin.post(
        "/api/v1/signals", json={"signals": [signal("X")]}, headers={"x-csrftoken": token}
    )
    assert response.status_code == 403
    assert await Signal.count() == 0


async def test_a_batch_of_a_thousand_for_many_households(sender, community, make_household):
    ids = [make_id(date(1960, 1, 1) + timedelta(days=n), 21) for n in range(20)]
    for n in range(len(ids)):
        await make_household(
            community, members=[member_data(born=date(1960, 1, 1) + timedelta(days=n), seq=21)]
        )
    items = [signal(f"M-{n}", "job_loss", id_number=ids[n % 20]) for n in range(980)]
    items += [
        signal(f"U-{n}", "job_loss", id_number=make_id(date(1970, 1, 1) + timedelta(days=n), 33))
        for n in range(20)
    ]
    body = await send(sender, *items)
    assert body["accepted"] == 1000
    assert len(await warnings()) == 20
    assert {w["signal_count"] for w in await warnings()} == {49}
    assert await Signal.count().where(Signal.status == "unmatched") == 20


# -- assignment, notification and escalation, with a real worker and a moved clock ---------------------


async def test_the_household_steward_is_assigned_and_told_at_once(sender, community, steward, worker):
    clock.freeze(NOON)
    client, user = await steward(community)
    as_steward = accounts.principal_for_user
    principal = await as_steward(user["id"])
    from households import services

    household_id = await services.create_household(
        principal,
        {
            "code": "S-1",
            "community_id": community,
            "address": "尧化路1号",
            "phone": "13900001111",
            "category": "dibao",
        },
        [member_data(name="李建华", born=BORN, seq=11)],
    )
    await send(sender, signal("A-1"))
    [warning] = await warnings()
    assert (warning["household"], warning["assigned_to"], warning["assigned_via"]) == (
        household_id,
        user["id"],
        "household_steward",
    )
    await run_jobs(worker)
    notification = await Notification.select().where(Notification.event == "warning_assigned").first()
    assert notification["user"] == user["id"] and notification["urgent"]
    item = await InboxItem.select().where(InboxItem.user == user["id"]).first()
    assert monitoring.number(warning["id"]) in item["title"] and item["link"] == f"/warnings/{warning['id']}"
    assert "李**" in item["body"] and "李建华" not in item["body"]
    page = await client.get("/warnings")
    assert page.status_code == 200 and monitoring.number(warning["id"]) in page.text


async def test_the_duty_steward_takes_warnings_of_households_without_a_steward(
    sender, household, community, steward, logged_in, worker
):
    _, duty = await steward(community)
    admin, _ = await logged_in("admin")
    refused = await admin.post_form(f"/admin/duty/communities/{community}", {"duty_steward": "999999"})
    assert refused.status_code == 422
    saved = await admin.post_form(f"/admin/duty/communities/{community}", {"duty_steward": str(duty["id"])})
    assert saved.status_code == 302
    await send(sender, signal("A-1"))
    [warning] = await warnings()
    assert (warning["assigned_to"], warning["assigned_via"]) == (duty["id"], "duty_steward")
    await run_jobs(worker)
    assert await InboxItem.count().where(InboxItem.user == duty["id"]) == 1


async def test_a_warning_not_verified_in_time_is_escalated_to_the_street_supervisor(
    sender, household, community, steward, logged_in, worker, make_client
):
    clock.freeze(NOON)
    own, assignee = await steward(community)
    await Community.update({Community.duty_steward: assignee["id"]}).where(Community.id == community)
    supervisor_client, supervisor = await steward()  # a steward of the street office, linked to no community
    street = (await Community.select(Community.street).where(Community.id == community).first())["street"]
    admin, _ = await logged_in("admin")
    assert (
        await admin.post_form(f"/admin/duty/streets/{street}", {"supervisor": str(supervisor["id"])})
    ).status_code == 302
    assert (await supervisor_client.get("/warnings")).text.count("YJ") == 0

    await send(sender, signal("FIRE-1", "disaster"))  # high, 24 hours to verify
    [warning] = await warnings()
    await run_jobs(worker)

    # Before the deadline nothing happens
    clock.advance(timedelta(hours=23, minutes=59))
    await outbox.schedule_due()
    await run_jobs(worker)
    assert (await HouseholdWarning.select().first())["escalated_at"] is None

    # When it passes, the periodic job escalates once, and the supervisor is told
    clock.advance(timedelta(minutes=2))
    await outbox.schedule_due()
    await run_jobs(worker)
    escalated = await HouseholdWarning.select().first()
    assert escalated["escalated_at"] == clock.now() and escalated["escalated_to"] == supervisor["id"]
    overdue = await Notification.select().where(Notification.event == "verification_overdue")
    assert [n["user"] for n in overdue] == [supervisor["id"]]
    assert await monitoring.escalate_overdue() == 0
    kinds = [
        e["kind"]
        for e in await WarningEvent.select()
        .where(WarningEvent.warning == warning["id"])
        .order_by(WarningEvent.id)
    ]
    assert kinds == ["opened", "assigned", "escalated"]

    # The supervisor sees it, can open it and give it to another steward, but not record a visit
    supervisor_client = make_client()
    await supervisor_client.login(supervisor["phone"], supervisor["password"])
    queue = await supervisor_client.get("/warnings?overdue=true")
    assert monitoring.number(warning["id"]) in queue.text
    detail = await supervisor_client.get(f"/warnings/{warning['id']}")
    assert detail.status_code == 200 and "王秀英" in detail.text
    _, other = await steward(community)
    moved = await supervisor_client.post_form(
        f"/warnings/{warning['id']}/reassign", {"user_id": str(other["id"])}
    )
    assert moved.status_code == 302
    assert (await HouseholdWarning.select().first())["assigned_to"] == other["id"]
    visit = await supervisor_client.post_form(f"/warnings/{warning['id']}/visit", visit_form())
    assert visit.status_code == 403
    await run_jobs(worker)
    assert (
        await Notification.count().where(
            (Notification.event == "warning_assigned") & (Notification.user == other["id"])
        )
        == 1
    )


async def test_a_verified_warning_is_not_escalated_and_without_a_supervisor_the_admins_are_told(
    sender, household, community, steward, make_user, make_household, worker
):
    clock.freeze(NOON)
    admin = await make_user("admin")
    client, _ = await steward(community)
    other_born = date(1971, 1, 1)
    await make_household(community, members=[member_data(born=other_born, seq=1)])
    await send(
        sender, signal("FIRE-1", "disaster"), signal("FIRE-2", "disaster", id_number=make_id(other_born, 1))
    )
    first, second = await warnings()
    assert (first["assigned_to"], first["assigned_via"]) == (None, "none")
    assert (await client.post_form(f"/warnings/{first['id']}/visit", visit_form())).status_code == 302
    clock.advance(timedelta(hours=25))
    await outbox.schedule_due()
    await run_jobs(worker)
    rows = {w["id"]: w for w in await warnings()}
    assert rows[first["id"]]["escalated_at"] is None
    assert rows[second["id"]]["escalated_at"] is not None and rows[second["id"]]["escalated_to"] is None
    overdue = await Notification.select().where(Notification.event == "verification_overdue")
    assert [n["user"] for n in overdue] == [admin["id"]]


# -- verification and handling -------------------------------------------------------------------------


def visit_form(**extra) -> dict:
    return {"visited_on": "2025-03-10", "met": "王秀英本人", "findings": "老人摔伤卧床，无人照料", **extra}


@pytest.fixture
async def verified(sender, household, community, steward):
    """A warning whose home visit is recorded; returns (steward client, warning id)."""
    await seed_catalog()  # the services a visit finds needed and a steward books
    clock.freeze(NOON)
    client, _ = await steward(community)
    await send(sender, signal("A-1"))
    [warning] = await warnings()
    form = visit_form(needs="meals")
    response = await client.post(
        f"/warnings/{warning['id']}/visit",
        data={**form, "needs": ["meals", "cleaning"], "_csrf_token": await client.csrf()},
        files=[("photos", ("room.jpg", JPEG, "image/jpeg"))],
    )
    assert response.status_code == 302, response.text
    return client, warning["id"]


async def test_a_visit_is_recorded_with_needs_and_a_photo_seen_only_in_scope(
    verified, steward, other_community, make_client
):
    client, warning_id = verified
    warning = await HouseholdWarning.select().where(HouseholdWarning.id == warning_id).first()
    assert warning["status"] == "verified" and warning["verified_at"] == NOON
    [photo] = await VerificationPhoto.select()
    assert photo["content_type"] == "image/jpeg" and photo["size"] == len(JPEG)
    path = monitoring.photo_dir() / photo["stored_name"]
    assert path.read_bytes() == JPEG and "room" not in photo["stored_name"]
    url = f"/warnings/{warning_id}/photos/{photo['id']}"
    shown = await client.get(url)
    assert (
        shown.status_code == 200 and shown.content == JPEG and shown.headers["content-type"] == "image/jpeg"
    )
    outsider, _ = await steward(other_community)
    assert (await outsider.get(url)).status_code == 404
    assert (await outsider.get(f"/warnings/{warning_id}")).status_code == 404
    assert (await make_client().get(url)).status_code == 302  # to the login page
    assert await AuditEvent.exists().where(AuditEvent.action == "warning.photo_read")
    page = await client.get(f"/warnings/{warning_id}")
    assert "助餐" in page.text and "保洁" in page.text


async def test_photos_are_checked_for_type_and_size(verified):
    client, warning_id = verified
    token = await client.csrf()
    fake = await client.post(
        f"/warnings/{warning_id}/visit",
        data={**visit_form(), "_csrf_token": token},
        files=[("photos", ("x.jpg", b"<script>alert(1)</script>", "image/jpeg"))],
    )
    assert fake.status_code == 422 and 'id="f-photos-error"' in fake.text
    big = await client.post(
        f"/warnings/{warning_id}/visit",
        data={**visit_form(), "_csrf_token": token},
        files=[("photos", ("x.jpg", JPEG + b"\x00" * monitoring.MAX_PHOTO_BYTES, "image/jpeg"))],
    )
    assert big.status_code == 422
    missing = await client.post_form(
        f"/warnings/{warning_id}/visit", {"visited_on": "2099-01-01", "met": "", "findings": ""}
    )
    assert missing.status_code == 422 and missing.text.count('aria-invalid="true"') == 3
    assert await VerificationPhoto.count() == 1


async def test_a_warning_cannot_be_handled_before_the_visit(sender, household, community, steward):
    client, _ = await steward(community)
    await send(sender, signal("A-1"))
    [warning] = await warnings()
    response = await client.post_form(
        f"/warnings/{warning['id']}/handle", {"outcome": "no_action", "note": "误报，已核实"}
    )
    assert response.status_code == 409


async def handle(client, warning_id: int, **form) -> None:
    response = await client.post_form(f"/warnings/{warning_id}/handle", form)
    assert response.status_code == 302, response.text
    return response


async def test_no_action_and_referral_close_the_warning_with_their_outcome(verified, sender, worker):
    client, warning_id = verified
    empty = await client.post_form(f"/warnings/{warning_id}/handle", {"outcome": "referral", "note": ""})
    assert (
        empty.status_code == 422
        and 'id="f-programme-error"' in empty.text
        and 'id="f-note-error"' in empty.text
    )
    await handle(
        client, warning_id, outcome="referral", programme="医疗救助", note="转介区医保局办理医疗救助"
    )
    warning = await HouseholdWarning.select().where(HouseholdWarning.id == warning_id).first()
    assert (warning["status"], warning["outcome"], warning["closed_at"], warning["handoff_state"]) == (
        "closed",
        "referral",
        NOON,
        "none",
    )
    assert (
        json.loads(warning["outcome_detail"])
        if isinstance(warning["outcome_detail"], str)
        else warning["outcome_detail"]
    )
    again = await client.post_form(
        f"/warnings/{warning_id}/handle", {"outcome": "no_action", "note": "再次处置"}
    )
    assert again.status_code == 409
    # A new signal after closing opens a new warning
    await send(sender, signal("A-2"))
    assert [w["status"] for w in await warnings()] == ["closed", "open"]


async def test_changing_the_level_goes_through_the_override_with_history_and_event(
    verified, household, worker
):
    client, warning_id = verified
    seen: list[LevelChanged] = []

    async def subscriber(change: LevelChanged) -> None:
        seen.append(change)

    events.on_level_changed(subscriber)
    try:
        await run_jobs(worker)
        seen.clear()
        await handle(
            client, warning_id, outcome="change_level", level="1", until="2025-06-30", note="摔伤后需每日探访"
        )
        await run_jobs(worker)
    finally:
        events.remove_subscriber(subscriber)
    row = await Household.select().where(Household.id == household).first()
    assert (row["level"], row["override_level"]) == (1, 1)
    last = (
        await HouseholdEvent.select()
        .where(HouseholdEvent.household == household)
        .order_by(HouseholdEvent.id, ascending=False)
        .first()
    )
    assert (
        last["kind"] == "level_override"
        and monitoring.number(warning_id) in last["reason"]
        and "摔伤后需每日探访" in last["reason"]
    )
    assert [(c.household_id, c.new_level, c.cause) for c in seen] == [(household, 1, "level_override")]
    bad = await client.post_form(f"/warnings/{warning_id}/handle", {"outcome": "change_level"})
    assert bad.status_code == 409  # closed already


@pytest.fixture
def without_orders():
    """Hand-offs as if the orders package were not installed; its implementations put back afterwards."""
    granter, booker = handoffs._granter, handoffs._booker
    handoffs.withdraw()
    yield
    handoffs.withdraw()
    if granter is not None:
        handoffs.provides_credit_grants(granter)
    if booker is not None:
        handoffs.provides_service_bookings(booker)


@pytest.mark.parametrize(
    ("form", "outcome"),
    [
        (
            {
                "outcome": "grant_credits",
                "credits": "60",
                "valid_until": "2025-04-30",
                "note": "临时加发服务点数",
            },
            "grant_credits",
        ),
        (
            {
                "outcome": "book_services",
                "categories": ["meals", "cleaning"],
                "wanted_on": "2025-03-11",
                "note": "先安排助餐和保洁",
            },
            "book_services",
        ),
    ],
)
async def test_credits_and_bookings_are_recorded_but_not_carried_out_without_the_orders_package(
    verified, worker, form, outcome, without_orders
):
    client, warning_id = verified
    await handle(client, warning_id, **form)
    assert (await HouseholdWarning.select().first())["handoff_state"] == "pending"
    await run_jobs(worker)
    warning = await HouseholdWarning.select().first()
    assert (warning["status"], warning["outcome"], warning["handoff_state"], warning["handoff_ref"]) == (
        "closed",
        outcome,
        "not_available",
        "",
    )
    page = await client.get(f"/warnings/{warning_id}")
    assert "仅作记录" in page.text


async def test_credits_and_bookings_are_passed_on_once_an_implementation_is_provided(
    verified, worker, household, without_orders
):
    client, warning_id = verified
    received: list = []

    @handoffs.provides_service_bookings
    async def book(request: handoffs.ServiceBooking) -> str:
        received.append(request)
        return "20250311-0001, 20250311-0002"

    try:
        await handle(
            client,
            warning_id,
            outcome="book_services",
            categories="meals",
            wanted_on="2025-03-11",
            note="先安排助餐",
        )
        await run_jobs(worker)
    finally:
        handoffs.withdraw()
    assert [(r.warning_id, r.household_id, r.categories, r.wanted_on) for r in received] == [
        (warning_id, household, ("meals",), date(2025, 3, 11))
    ]
    warning = await HouseholdWarning.select().first()
    assert (warning["handoff_state"], warning["handoff_ref"]) == ("done", "20250311-0001, 20250311-0002")
    assert await monitoring.hand_off(warning_id) == "done"
    assert len(received) == 1


async def test_handling_fields_are_checked(verified):
    client, warning_id = verified
    cases = {
        "grant_credits": ({"credits": "0", "valid_until": "2030-01-01"}, {"credits", "valid_until"}),
        "book_services": ({"categories": "bathing_the_cat", "wanted_on": ""}, {"categories", "wanted_on"}),
        "change_level": ({"level": "4", "until": "2020-01-01"}, {"level", "until"}),
    }
    for outcome, (fields, expected) in cases.items():
        response = await client.post_form(
            f"/warnings/{warning_id}/handle", {"outcome": outcome, "note": "说明理由", **fields}
        )
        assert response.status_code == 422
        for name in expected:
            assert f'id="f-{name}-error"' in response.text, (outcome, name)
    assert (await HouseholdWarning.select().first())["status"] == "verified"


# -- by hand, by file, and review --------------------------------------------------------------------------


async def test_a_steward_reports_a_signal_by_hand_within_their_communities(
    household, community, other_community, steward, make_household
):
    client, _ = await steward(community)
    code = (await Household.select(Household.code).where(Household.id == household).first())["code"]
    form = await client.get(f"/signals/new?household={code}")
    assert form.status_code == 200 and code in form.text
    response = await client.post_form(
        "/signals/new",
        {
            "kind": "hospital_bill",
            "occurred_on": "2025-03-01",
            "household_code": code,
            "details.amount": "30000",
            "details.out_of_pocket_share": "80%",
            "note": "邻居反映住院",
        },
    )
    assert response.status_code == 302 and response.headers["location"].startswith("/warnings/")
    [warning] = await warnings()
    assert warning["severity"] == "high"  # 24,000 out of pocket
    stored = await Signal.select().first()
    assert (stored["source"], stored["reported_by"] is not None) == ("steward", True)
    elsewhere = await make_household(other_community)
    other_code = (await Household.select(Household.code).where(Household.id == elsewhere).first())["code"]
    refused = await client.post_form(
        "/signals/new", {"kind": "accident", "occurred_on": "2025-03-01", "household_code": other_code}
    )
    assert refused.status_code == 422 and 'id="f-household_code-error"' in refused.text
    bad = await client.post_form("/signals/new", {"kind": "", "occurred_on": "", "household_code": code})
    assert (
        bad.status_code == 422 and 'id="f-kind-error"' in bad.text and 'id="f-occurred_on-error"' in bad.text
    )


async def test_an_admin_uploads_signals_from_a_csv_file_twice_without_duplicates(logged_in, household):
    admin, _ = await logged_in("admin")
    template = await admin.get("/admin/signals/template.csv")
    assert template.status_code == 200 and b"kind" in template.content
    rows = [
        "kind,occurred_on,id_number,amount,out_of_pocket_share,months",
        f"hospital_bill,2025-03-01,{ID_NUMBER},56000,0.45,",
        f"utility_arrears,2025-03-01,{ID_NUMBER},,,4",
        "flood,2025-03-01,,,,",
    ]
    content = ("\n".join(rows) + "\n").encode("utf-8")
    token = await admin.csrf()
    first = await admin.post(
        "/admin/signals/upload", data={"_csrf_token": token}, files={"file": ("s.csv", content, "text/csv")}
    )
    assert first.status_code == 200
    assert "4" in first.text and "flood" in first.text
    assert await Signal.count() == 2
    second = await admin.post(
        "/admin/signals/upload", data={"_csrf_token": token}, files={"file": ("s.csv", content, "text/csv")}
    )
    assert second.status_code == 200 and await Signal.count() == 2
    report = await monitoring.upload_csv(ADMIN, content)
    assert (report.accepted, report.duplicate, [row for row, _ in report.rejected]) == (0, 2, [4])


async def test_unmatched_signals_are_reviewed_matched_registered_or_set_aside(
    sender, logged_in, community, make_household, worker
):
    clock.freeze(NOON)
    admin, _ = await logged_in("admin")
    stranger = make_id(date(1980, 2, 2), 45)
    community_code = (await Community.select(Community.code).where(Community.id == community).first())["code"]
    await send(
        sender,
        signal("U-1", id_number=stranger, person_name="陈国强", community_code=community_code),
        signal("U-2", "job_loss", id_number=make_id(date(1981, 3, 3), 47)),
        signal("U-3", "job_loss", id_number=None, household_code="NOT-YET"),
    )
    assert await Signal.count().where(Signal.status == "unmatched") == 3 and await warnings() == []
    review = await admin.get("/signals/review")
    assert review.status_code == 200 and "陈国强" in review.text and stranger not in review.text

    # Register the stranger as a candidate household: the warning opens on it
    first = await Signal.select().where(Signal.event_id == "U-1").first()
    page = await admin.get(f"/signals/{first['id']}")
    assert page.status_code == 200
    missing = await admin.post_form(
        f"/signals/{first['id']}/candidate", {"name": "陈国强", "community_id": str(community)}
    )
    assert missing.status_code == 422 and 'id="f-address-error"' in missing.text
    created = await admin.post_form(
        f"/signals/{first['id']}/candidate",
        {"name": "陈国强", "community_id": str(community), "address": "尧化路9号", "phone": "13900009999"},
    )
    assert created.status_code == 302
    candidate = await Household.select().where(Household.status == "candidate").first()
    assert candidate["code"] == f"C-{first['id']:06d}" and candidate["category"] == "low_income_monitored"
    member = await Member.select().where(Member.household == candidate["id"]).first()
    assert member["name"] == "陈国强" and member["id_masked"].endswith(stranger[-4:])
    [warning] = await warnings()
    assert warning["household"] == candidate["id"]
    assert await AuditEvent.exists().where(AuditEvent.action == "signal.candidate_created")

    # Set one aside with a reason
    second = await Signal.select().where(Signal.event_id == "U-2").first()
    assert (await admin.post_form(f"/signals/{second['id']}/dismiss", {"reason": ""})).status_code == 422
    assert (
        await admin.post_form(f"/signals/{second['id']}/dismiss", {"reason": "户籍不在本区"})
    ).status_code == 302
    assert (await Signal.select().where(Signal.id == second["id"]).first())["status"] == "dismissed"

    # The third matches once its household is registered
    await make_household(community, code="NOT-YET")
    matched = await admin.post_form("/signals/review/rematch")
    assert matched.status_code == 302 and matched.headers["location"] == "/signals/review?matched=1"
    assert await Signal.count().where(Signal.status == "unmatched") == 0
    assert len(await warnings()) == 2


async def test_an_unmatched_signal_is_matched_by_hand_and_stewards_review_only_their_communities(
    sender, household, community, other_community, steward
):
    community_code = (await Community.select(Community.code).where(Community.id == community).first())["code"]
    await send(
        sender, signal("U-1", id_number=None, household_code="WRONG-CODE", community_code=community_code)
    )
    stored = await Signal.select().first()
    client, _ = await steward(community)
    outsider, _ = await steward(other_community)
    assert (await outsider.get(f"/signals/{stored['id']}")).status_code == 404
    assert "WRONG-CODE" not in (await outsider.get("/signals/review")).text
    code = (await Household.select(Household.code).where(Household.id == household).first())["code"]
    response = await client.post_form(f"/signals/{stored['id']}/match", {"household_code": code})
    assert response.status_code == 302
    [warning] = await warnings()
    assert response.headers["location"] == f"/warnings/{warning['id']}"
    assert (await Signal.select().first())["matched_by"] == "review"


# -- rules, overview, scope ----------------------------------------------------------------------------------


async def test_an_admin_edits_the_rules_and_new_signals_follow_them(logged_in, sender, household):
    admin, _ = await logged_in("admin")
    page = await admin.get("/admin/warning-rules")
    assert page.status_code == 200 and "medical_cost_high" in page.text
    form = {
        "rules-0-id": "job_loss",
        "rules-0-kind": "job_loss",
        "rules-0-measure": "",
        "rules-0-severity": "high",
        "rules-0-deadline_hours": "12",
        "rules-0-label_zh": "失业",
        "rules-0-label_en": "Job loss",
        "rules-0-enabled": "on",
        "window_hours": "24",
        "note": "失业从严",
    }
    missing_note = await admin.post_form("/admin/warning-rules", {**form, "note": ""})
    assert missing_note.status_code == 422
    assert (await admin.post_form("/admin/warning-rules", form)).status_code == 302
    assert (await monitoring.current_rules()).version == 1
    await send(sender, signal("J-1", "job_loss"), signal("A-1", "accident"))
    [warning] = await warnings()
    assert (warning["severity"], warning["signal_count"], warning["rule"]) == ("high", 1, "job_loss")
    assert await Signal.count().where(Signal.warning.is_null()) == 1  # no rule for accidents any more
    history = await admin.get("/admin/warning-rules")
    assert "失业从严" in history.text


async def test_the_overview_counts_open_overdue_closed_and_the_median_time_to_verify(
    verified, logged_in, sender, community, make_household
):
    client, warning_id = verified
    await handle(client, warning_id, outcome="no_action", note="家属已照料，无需干预")
    other = await make_household(community, members=[member_data(born=date(1966, 6, 6), seq=31)])
    await send(sender, signal("FIRE-9", "disaster", id_number=make_id(date(1966, 6, 6), 31)))
    clock.advance(timedelta(days=2))
    figures = await monitoring.overview(ADMIN)
    assert (figures["open"], figures["overdue"], figures["closed_this_month"], figures["unassigned"]) == (
        1,
        1,
        1,
        1,
    )
    assert figures["median_hours_to_verify"] == 0  # verified in the fixture at the moment it opened
    admin, _ = await logged_in("admin")
    page = await admin.get("/admin/warnings")
    assert page.status_code == 200
    assert other


async def test_the_queue_and_the_api_show_a_steward_only_their_communities(
    sender, household, community, other_community, steward
):
    await send(sender, signal("A-1"))
    [warning] = await warnings()
    mine, _ = await steward(community)
    outsider, _ = await steward(other_community)
    assert monitoring.number(warning["id"]) in (await mine.get("/warnings")).text
    assert monitoring.number(warning["id"]) not in (await outsider.get("/warnings")).text
    api = await mine.get("/api/v1/warnings")
    assert api.status_code == 200 and [w["id"] for w in api.json()["items"]] == [warning["id"]]
    assert (await outsider.get("/api/v1/warnings")).json()["total"] == 0
    household_page = await mine.get(f"/households/{household}")
    assert monitoring.number(warning["id"]) in household_page.text


async def test_no_log_line_holds_an_id_number(sender, household, caplog):
    import logging

    caplog.set_level(logging.DEBUG, logger="cloudmarket")
    await send(sender, signal("A-1"), signal("A-2", id_number=make_id(date(1990, 1, 1), 5)))
    assert ID_NUMBER not in caplog.text and "王秀英" not in caplog.text
    assert await Street.count() > 0
