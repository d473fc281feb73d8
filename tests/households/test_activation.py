"""Resident account activation with a one-time code: the whole path, and every way it refuses."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from households.tables import ActivationChallenge, HouseholdEvent, Member
from marketplace import accounts, clock
from marketplace.auth import LinkKind
from marketplace.tables import AuditEvent, User, UserLink
from notifications.tables import Notification, SandboxSms
from tests.conftest import run_jobs
from tests.households.conftest import member_data

PHONE = "13712345678"
NEW_PASSWORD = "a-new-password-1"


@pytest.fixture
async def on_record(community, make_household):
    """A household whose head has PHONE on record and no account."""
    household_id = await make_household(
        community, members=[member_data(name="王秀英", born=date(1950, 4, 2), seq=8, phone=PHONE)]
    )
    member = await Member.select(Member.id).where(Member.household == household_id).first()
    return household_id, member["id"]


async def codes_sent(phone: str = PHONE) -> list[str]:
    """The activation codes texted to ``phone`` (other texts, such as credits granted, left out)."""
    rows = await SandboxSms.select(SandboxSms.text).where(SandboxSms.phone == phone).order_by(SandboxSms.id)
    return [m.group(1) for row in rows if (m := re.search(r"激活码为(\d{6})", row["text"]))]


async def ask(client, phone: str = PHONE):
    return await client.post_form("/activate", {"phone": phone})


async def enter(
    client, code: str, phone: str = PHONE, password: str = NEW_PASSWORD, again: str | None = None
):
    return await client.post_form(
        "/activate/code",
        {"phone": phone, "code": code, "password": password, "password_again": again or password},
    )


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_a_member_on_record_activates_an_account_and_is_logged_in(client, worker, on_record):
    household_id, member_id = on_record
    login = await client.get("/login")
    assert 'href="/activate"' in login.text

    # Given a member whose phone is on record asks for a code
    page = await ask(client)
    assert page.status_code == 200 and "137****5678" in page.text
    await run_jobs(worker)
    [code] = await codes_sent()

    # The code is kept only as a keyed hash
    challenge = await ActivationChallenge.select().first()
    assert challenge["code_hash"] and code not in challenge["code_hash"]
    notification = await Notification.select().first()
    assert code not in str(notification["context"])  # blanked once delivered

    # When they type it with a new password
    response = await enter(client, code)
    assert response.status_code == 302 and response.headers["location"] == "/my/household?welcome=1"

    # Then the account exists, is linked to the household and the member, and they are logged in
    user = await User.select().where(User.phone == PHONE).first()
    assert user["role"] == "resident" and user["display_name"] == "王秀英"
    links = {(r["kind"], r["target"]) for r in await UserLink.select().where(UserLink.user == user["id"])}
    assert links == {("household", str(household_id)), ("member", str(member_id))}
    mine = await client.get("/my/household?welcome=1")
    assert mine.status_code == 200 and "王秀英" in mine.text
    assert (await accounts.login(PHONE, NEW_PASSWORD)).user["id"] == user["id"]
    history = await HouseholdEvent.select().where(HouseholdEvent.kind == "account_activated").first()
    assert history["household"] == household_id
    actions = [r["action"] for r in await AuditEvent.select(AuditEvent.action).order_by(AuditEvent.id)]
    assert "account.activation_requested" in actions and "account.activated" in actions
    assert not any(PHONE in str(r["detail"]) for r in await AuditEvent.select(AuditEvent.detail))

    # And the code cannot be used again
    again = await enter(client, code)
    assert again.status_code == 422


async def test_a_phone_not_on_record_gets_the_same_answer_and_no_code(make_client, worker, on_record):
    known, unknown = make_client(), make_client()
    known_page = await ask(known)
    unknown_page = await ask(unknown, "13787654321")
    assert known_page.status_code == unknown_page.status_code == 200

    def strip(text: str) -> str:
        text = re.sub(r'name="_csrf_token" value="[^"]*"', "", text)
        text = re.sub(r'content="[^"]*"', "", text)
        return (
            text.replace("137****5678", "X")
            .replace("137****4321", "X")
            .replace(PHONE, "Y")
            .replace("13787654321", "Y")
        )

    assert strip(known_page.text) == strip(unknown_page.text)
    assert await ActivationChallenge.count() == 2
    await run_jobs(worker)
    assert await codes_sent("13787654321") == []
    assert len(await codes_sent()) == 1
    # Any code for the unknown number fails the way a wrong code does
    response = await enter(unknown, "123456", phone="13787654321")
    assert response.status_code == 422 and "4" in response.text and 'aria-invalid="true"' in response.text
    assert await User.count().where(User.phone == "13787654321") == 0


async def test_a_wrong_code_costs_a_try_and_five_wrong_codes_end_the_code(client, worker, on_record):
    await ask(client)
    await run_jobs(worker)
    [code] = await codes_sent()
    for left in (4, 3, 2, 1):
        response = await enter(client, wrong(code))
        assert response.status_code == 422
        assert f"还可尝试 {left} 次" in response.text or f"Tries left: {left}" in response.text
    fifth = await enter(client, wrong(code))
    assert fifth.status_code == 422
    # Even the right code no longer works: a new one is needed
    right = await enter(client, code)
    assert right.status_code == 422 and await User.count().where(User.phone == PHONE) == 0
    reasons = [
        r["detail"] for r in await AuditEvent.select().where(AuditEvent.action == "account.activation_failed")
    ]
    assert len(reasons) == 6 and "too_many_attempts" in str(reasons[-1])

    # A new code works
    await ask(client)
    await run_jobs(worker)
    newest = (await codes_sent())[-1]
    assert (await enter(client, newest)).status_code == 302


async def test_an_expired_code_is_refused(client, worker, on_record):
    clock.freeze(clock.now())
    await ask(client)
    await run_jobs(worker)
    [code] = await codes_sent()
    clock.advance(timedelta(minutes=10, seconds=1))
    response = await enter(client, code)
    assert response.status_code == 422 and await User.count().where(User.phone == PHONE) == 0


async def test_a_new_code_replaces_the_old_one(client, worker, on_record):
    await ask(client)
    await run_jobs(worker)
    await ask(client)
    await run_jobs(worker)
    first, second = await codes_sent()
    assert (await enter(client, first)).status_code == 422 or first == second
    assert (await enter(client, second)).status_code == 302


async def test_bad_passwords_are_refused_without_using_a_try(client, worker, on_record):
    await ask(client)
    await run_jobs(worker)
    [code] = await codes_sent()
    short = await enter(client, code, password="short")
    assert short.status_code == 422 and 'id="f-password-error"' in short.text
    different = await enter(client, code, again="something-else")
    assert different.status_code == 422 and 'id="f-password_again-error"' in different.text
    assert (await ActivationChallenge.select().first())["attempts"] == 0
    assert (await enter(client, code)).status_code == 302


async def test_asking_too_often_is_rate_limited_per_phone(client, make_client, on_record):
    for _ in range(3):
        assert (await ask(client)).status_code == 200
    limited = await ask(client)
    assert limited.status_code == 429
    # Another phone from another address is not affected
    assert (await ask(make_client(), "13787654321")).status_code == 200


async def test_an_activated_account_gets_no_code(client, worker, on_record, make_user):
    await make_user("resident", phone=PHONE)
    assert (await ask(client)).status_code == 200
    await run_jobs(worker)
    assert await codes_sent() == []


async def test_a_phone_held_by_a_staff_account_gets_no_code(
    client, worker, community, make_household, make_user
):
    await make_user("steward", phone=PHONE)
    await make_household(community, members=[member_data(seq=8, phone=PHONE)])
    await ask(client)
    await run_jobs(worker)
    assert await codes_sent() == []


async def test_a_family_account_linked_by_a_steward_activates_with_its_own_phone(
    steward, make_client, worker, community, make_household
):
    household_id = await make_household(community)
    staff, _ = await steward(community)
    linked = await staff.post_form(
        f"/households/{household_id}/proxies", {"phone": "13655556666", "display_name": "王小明"}
    )
    assert linked.status_code == 302
    detail = await staff.get(f"/households/{household_id}")
    assert "尚未激活" in detail.text or "not activated yet" in detail.text

    family = make_client()
    await ask(family, "13655556666")
    await run_jobs(worker)
    [code] = await codes_sent("13655556666")
    assert (await enter(family, code, phone="13655556666")).status_code == 302
    user = await User.select().where(User.phone == "13655556666").first()
    assert user["password_hash"] and user["display_name"] == "王小明"
    assert await UserLink.exists().where(
        (UserLink.user == user["id"]) & (UserLink.kind == LinkKind.HOUSEHOLD.value)
    )
    detail = await staff.get(f"/households/{household_id}")
    assert "尚未激活" not in detail.text and "not activated yet" not in detail.text


async def test_a_logged_in_person_is_sent_home(logged_in):
    client, _ = await logged_in("resident")
    response = await client.get("/activate")
    assert response.status_code == 302 and response.headers["location"] == "/"


async def test_a_malformed_number_is_named_next_to_the_field(client):
    response = await ask(client, "12345")
    assert response.status_code == 422 and 'aria-invalid="true"' in response.text
    assert await ActivationChallenge.count() == 0


async def test_old_challenges_are_forgotten(client, on_record):
    from households import activation

    clock.freeze(clock.now())
    await ask(client)
    clock.advance(timedelta(days=1, minutes=1))
    assert await activation.forget_old_challenges() == 1
    assert await ActivationChallenge.count() == 0
