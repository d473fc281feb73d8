"""Overrides with history, level-change events to subscribers, expiry by the clock, rule edits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from households import events, services
from households.events import LevelChanged
from households.tables import Household, HouseholdEvent, LevelRuleSet
from marketplace import clock, db, outbox
from marketplace.auth import Principal, Role
from tests.conftest import run_jobs


@pytest.fixture
def received():
    """A level-change subscriber registered for one test; yields what it received."""
    seen: list[LevelChanged] = []

    async def subscriber(change: LevelChanged) -> None:
        seen.append(change)

    events.on_level_changed(subscriber)
    yield seen
    events.remove_subscriber(subscriber)


async def history(household_id: int) -> list[dict]:
    return (
        await HouseholdEvent.select(
            HouseholdEvent.all_columns(), HouseholdEvent.actor.display_name.as_alias("actor_name")
        )
        .where(HouseholdEvent.household == household_id)
        .order_by(HouseholdEvent.id)
    )


async def test_override_is_kept_in_history_and_announced_then_expires_by_the_clock(
    steward, community, make_household, worker, received
):
    clock.freeze(datetime(2025, 3, 10, 2, 0, tzinfo=UTC))  # 10:00 in Nanjing
    household_id = await make_household(community, category="dibao")  # 2 points: level 3
    await run_jobs(worker)
    assert [(c.old_level, c.new_level, c.cause) for c in received] == [(None, 3, "level_computed")]
    received.clear()
    client, user = await steward(community)

    # Given a steward who saw more than the rules did
    missing = await client.post_form(
        f"/households/{household_id}/override", {"level": "1", "reason": "", "until": ""}
    )
    assert missing.status_code == 422 and missing.text.count('aria-invalid="true"') == 2
    response = await client.post_form(
        f"/households/{household_id}/override",
        {"level": "1", "reason": "老人摔伤，需每日探访", "until": "2025-03-20"},
    )
    assert response.status_code == 302, response.text

    # Then the level is 1, the history says who, when, from, to and why, and subscribers hear of it
    household = await Household.select().where(Household.id == household_id).first()
    assert (household["level"], household["computed_level"], household["override_level"]) == (1, 3, 1)
    last = (await history(household_id))[-1]
    assert (last["kind"], last["from_value"], last["to_value"], last["reason"]) == (
        "level_override",
        "3",
        "1",
        "老人摔伤，需每日探访",
    )
    assert last["actor"] == user["id"] and last["at"] == clock.now()
    await run_jobs(worker)
    assert [(c.household_id, c.community_id, c.old_level, c.new_level, c.cause) for c in received] == [
        (household_id, community, 3, 1, "level_override")
    ]
    page = await client.get(f"/households/{household_id}")
    assert "老人摔伤，需每日探访" in page.text

    # When the last day passes, the periodic job ends the override
    clock.advance(timedelta(days=10, hours=13))  # 2025-03-20 23:00 local: still the last day
    await outbox.schedule_due()
    await run_jobs(worker)
    assert (await Household.select(Household.level).where(Household.id == household_id).first())["level"] == 1
    clock.advance(timedelta(hours=2))  # 2025-03-21 01:00 local
    await outbox.schedule_due()
    await run_jobs(worker)
    household = await Household.select().where(Household.id == household_id).first()
    assert (household["level"], household["override_level"], household["override_until"]) == (3, None, None)
    last = (await history(household_id))[-1]
    assert (last["kind"], last["from_value"], last["to_value"], last["actor"]) == (
        "override_ended",
        "1",
        "3",
        None,
    )
    assert received[-1].cause == "override_ended" and (received[-1].old_level, received[-1].new_level) == (
        1,
        3,
    )


async def test_a_subscriber_that_fails_is_retried_and_sees_the_change_again(
    community, make_household, worker
):
    calls: list[int] = []

    async def flaky(change: LevelChanged) -> None:
        calls.append(change.event_id)
        if len(calls) == 1:
            raise RuntimeError("credits service busy")

    events.on_level_changed(flaky)
    try:
        clock.freeze(clock.now())
        await make_household(community)
        await run_jobs(worker, fail_fast=False)
        clock.advance(timedelta(seconds=5))  # past the first retry's back-off
        await run_jobs(worker, fail_fast=False)
    finally:
        events.remove_subscriber(flaky)
    assert len(calls) >= 2 and len(set(calls)) == 1


async def test_clearing_an_override_early_needs_a_reason(steward, community, make_household):
    household_id = await make_household(community, category="dibao")
    client, _ = await steward(community)
    await client.post_form(
        f"/households/{household_id}/override",
        {
            "level": "2",
            "reason": "暂时调整",
            "until": (clock.local_now().date() + timedelta(days=5)).isoformat(),
        },
    )
    refused = await client.post_form(f"/households/{household_id}/override/clear", {"reason": ""})
    assert refused.status_code == 422
    done = await client.post_form(f"/households/{household_id}/override/clear", {"reason": "情况已好转"})
    assert done.status_code == 302
    household = await Household.select().where(Household.id == household_id).first()
    assert (household["level"], household["override_level"]) == (3, None)
    assert (await history(household_id))[-1]["reason"] == "情况已好转"


async def test_an_override_date_in_the_past_or_far_ahead_is_refused(steward, community, make_household):
    household_id = await make_household(community)
    client, _ = await steward(community)
    for until in ("2000-01-01", (clock.local_now().date() + timedelta(days=400)).isoformat()):
        response = await client.post_form(
            f"/households/{household_id}/override",
            {"level": "1", "reason": "理由充分", "until": until},
            headers={"accept-language": "en"},
        )
        assert response.status_code == 422 and "Choose a day from today to one year ahead." in response.text


async def test_admin_edits_the_rules_with_history_and_every_household_is_rescored(
    logged_in, community, make_household, worker, received
):
    household_id = await make_household(community, category="dibao")  # 2 points: level 3
    await run_jobs(worker)
    received.clear()
    admin, user = await logged_in("admin")
    page = await admin.get("/admin/need-levels")
    assert page.status_code == 200 and "独居老人" in page.text
    rules, thresholds, _ = services.rules_from_form(_form_of(await services.rules_page()))
    form: dict[str, str] = {}
    for n, rule in enumerate(rules):
        for key, value in rule.items():
            if key == "enabled":
                if value:
                    form[f"rules-{n}-enabled"] = "on"
            else:
                form[f"rules-{n}-{key}"] = "" if value is None else str(value)
        if rule["id"] == "dibao":
            form[f"rules-{n}-points"] = "5"
    form.update({"level1": str(thresholds["level1"]), "level2": str(thresholds["level2"])})

    no_note = await admin.post_form("/admin/need-levels", form, headers={"accept-language": "en"})
    assert no_note.status_code == 422 and "Say briefly why the rules change." in no_note.text
    form["note"] = "低保对象优先"
    bad = dict(form, **{"rules-0-points": "99"})
    assert (await admin.post_form("/admin/need-levels", bad)).status_code == 422
    saved = await admin.post_form("/admin/need-levels", form)
    assert saved.status_code == 302
    versions = await LevelRuleSet.select()
    assert [(v["version"], v["note"], v["created_by"]) for v in versions] == [(1, "低保对象优先", user["id"])]

    await run_jobs(worker)
    household = await Household.select().where(Household.id == household_id).first()
    assert (household["level"], household["level_points"]) == (1, 5)
    explanation = household["level_explanation"]
    explanation = json.loads(explanation) if isinstance(explanation, str) else explanation
    assert explanation["version"] == 1
    assert [(c.old_level, c.new_level) for c in received] == [(3, 1)]
    assert "低保对象优先" in (await admin.get("/admin/need-levels")).text


def _form_of(page: dict) -> dict[str, str]:
    """The rule editor's fields as a browser would send them."""
    form: dict[str, str] = {}
    for n, rule in enumerate(page["rules"]):
        if rule.get("new"):
            form[f"rules-{n}-new"] = "1"
            continue
        for key in ("id", "kind", "value", "points", "label_zh", "label_en"):
            form[f"rules-{n}-{key}"] = "" if rule.get(key) is None else str(rule[key])
        if rule.get("enabled"):
            form[f"rules-{n}-enabled"] = "on"
    form["level1"], form["level2"] = str(page["thresholds"]["level1"]), str(page["thresholds"]["level2"])
    return form


async def test_only_admins_edit_rules_and_groups(steward, community, logged_in):
    client, _ = await steward(community)
    assert (await client.get("/admin/need-levels")).status_code == 403
    admin, _ = await logged_in("admin")
    bad = await admin.post_form("/admin/need-groups", {"code": "Bad Code", "name_zh": "", "name_en": "x"})
    assert bad.status_code == 422
    ok = await admin.post_form(
        "/admin/need-groups", {"code": "dementia", "name_zh": "失智老人", "name_en": "Dementia"}
    )
    assert ok.status_code == 302
    assert "失智老人" in (await admin.get("/admin/need-groups")).text
    assert "dementia" in await services.known_group_codes()


async def _level_events() -> dict[int, list[int]]:
    rows = await HouseholdEvent.select(HouseholdEvent.id, HouseholdEvent.household).where(
        HouseholdEvent.kind == "level_computed"
    )
    grouped: dict[int, list[int]] = {}
    for row in rows:
        grouped.setdefault(row["household"], []).append(row["id"])
    return grouped


async def test_rescoring_in_batches_writes_changed_households_history_and_announces_level_changes(
    community, make_household, worker, received
):
    # Given five households (one with a level set by hand, one erased) and a rule change that
    # makes dibao worth 5 points (level 1) and leaves tekun as it was
    ids = [await make_household(community, category="dibao") for _ in range(3)]
    tekun = await make_household(community, category="tekun")
    erased = await make_household(community, category="dibao")
    admin = Principal(user_id=None, role=Role.ADMIN)
    until = (clock.local_now().date() + timedelta(days=3)).isoformat()
    await services.override_level(admin, ids[2], level=2, reason="看护中的家庭", until=until)
    await Household.update({Household.erased_at: clock.now()}).where(Household.id == erased)
    await run_jobs(worker)
    received.clear()
    before = await _level_events()
    current = await services.current_rules()
    rules = [dict(r, points=5) if r["id"] == "dibao" else r for r in current.rules]
    await LevelRuleSet.insert(LevelRuleSet(version=1, rules=rules, thresholds=current.thresholds, note="t"))

    # When every household is scored again, two at a time
    assert await services.rescore_all(1, batch=2) == 4
    await run_jobs(worker)

    # Then the dibao households are written (one history row each), the others are not
    after = await _level_events()
    new = {hid: len(after.get(hid, [])) - len(before.get(hid, [])) for hid in [*ids, tekun, erased]}
    assert new == {ids[0]: 1, ids[1]: 1, ids[2]: 1, tekun: 0, erased: 0}
    rows = {r["id"]: r for r in await Household.select().where(Household.id.is_in([*ids, tekun, erased]))}
    assert [(rows[h]["computed_level"], rows[h]["level"], rows[h]["level_points"]) for h in ids] == [
        (1, 1, 5),
        (1, 1, 5),
        (1, 2, 5),  # the level set by hand stays in force
    ]
    explanation = rows[ids[0]]["level_explanation"]
    explanation = json.loads(explanation) if isinstance(explanation, str) else explanation
    assert explanation["version"] == 1 and explanation["points"] == 5
    assert rows[erased]["level_points"] == 2
    # Only the changes of the level in force are announced, with their history rows' ids
    assert sorted((c.household_id, c.old_level, c.new_level, c.event_id) for c in received) == sorted(
        (h, 3, 1, after[h][-1]) for h in ids[:2]
    )
    # And scoring again with the same rules writes nothing
    assert await services.rescore_all(1, batch=2) == 4
    assert await _level_events() == after


@pytest.mark.postgres
async def test_rescoring_a_batch_costs_the_same_round_trips_for_two_households_or_twelve(
    community, make_household
):
    """Round trips, not PostgreSQL, are the cost: a batch's statements do not grow with its size."""
    ids = [await make_household(community, category="dibao") for _ in range(12)]
    current = await services.current_rules()
    rules = [dict(r, points=5) if r["id"] == "dibao" else r for r in current.rules]
    await LevelRuleSet.insert(LevelRuleSet(version=1, rules=rules, thresholds=current.thresholds, note="t"))
    statements: dict[int, int] = {}
    for batch in (ids[:2], ids[2:]):
        sent: list[str] = []
        async with db.atomic():
            connection = db.engine().current_transaction.get().connection
            connection.add_query_logger(lambda record, sent=sent: sent.append(record.query))
            assert len(await services.rescore(batch)) == len(batch)
        statements[len(batch)] = len(sent)
    assert statements[10] == statements[2], statements
