"""Values only one record may hold (household code, ID number, a proxy's phone), written at the same moment.

On PostgreSQL the requests race (asyncio.gather): every one checks before writing, and the
unique index refuses all but one; the losers must get 422 naming the field, never a 500.  On
SQLite (one writer at a time) they run one after the other and the check before writing answers.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from households.tables import Household, Member
from marketplace import accounts, db
from marketplace.auth import LinkKind
from marketplace.tables import User
from tests.helpers import make_id

RACERS = 5
HEAD_ID = make_id(date(1950, 6, 1), 7)


async def _all(client: Any, requests: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
    """The requests at once on PostgreSQL, one after the other on SQLite."""
    headers = {"x-csrftoken": await client.csrf(), "accept-language": "en"}
    calls = [client.request(method, url, json=body, headers=headers) for method, url, body in requests]
    if db.is_postgres():
        return list(await asyncio.gather(*calls))
    return [await call for call in calls]


def _household(community: int, code: str, id_number: str) -> dict[str, Any]:
    return {
        "code": code, "community_id": community, "address": "晨光路1号", "phone": "13912345678",
        "category": "dibao", "members": [{"name": "王芳", "id_number": id_number, "can_use_phone": True}],
    }  # fmt: skip


def _one_winner(responses: list[Any]) -> list[dict[str, Any]]:
    """Exactly one request succeeded; the problems of the others."""
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] in (200, 201) and statuses[1:] == [422] * (len(responses) - 1), [
        r.text for r in responses
    ]
    return [r.json() for r in responses if r.status_code == 422]


async def test_the_same_household_code_registered_at_once(steward, community):
    client, _ = await steward(community)
    requests = [
        ("POST", "/api/v1/households", _household(community, "RACE-1", make_id(date(1960, 1, 1), 2 * n + 1)))
        for n in range(RACERS)
    ]
    for problem in _one_winner(await _all(client, requests)):
        assert problem["errors"] == [
            {"field": "code", "message": "A household with this code is already registered."}
        ]
    assert await Household.count() == 1 and await Member.count() == 1


async def test_the_same_id_number_in_new_households_at_once(steward, community):
    client, _ = await steward(community)
    requests = [
        ("POST", "/api/v1/households", _household(community, f"RACE-{n}", HEAD_ID)) for n in range(RACERS)
    ]
    responses = await _all(client, requests)
    problems = _one_winner(responses)
    winner = next(r.json() for r in responses if r.status_code < 300)
    for problem in problems:
        assert problem["errors"] == [{
            "field": "members-0-id_number",
            "message": f"This ID number is already registered in household {winner['code']}.",
        }]  # fmt: skip
    assert all(HEAD_ID not in r.text and HEAD_ID[6:14] not in r.text for r in responses)
    assert await Household.count() == 1 and await Member.count() == 1


async def test_the_same_id_number_added_to_several_households_at_once(steward, community, make_household):
    households = [await make_household(community) for _ in range(RACERS)]
    client, _ = await steward(community)
    member = {"name": "李明", "id_number": HEAD_ID, "relation": "spouse", "can_use_phone": True}
    requests = [("POST", f"/api/v1/households/{h}/members", member) for h in households]
    responses = await _all(client, requests)
    problems = _one_winner(responses)
    winner = next(r.json() for r in responses if r.status_code < 300)
    for problem in problems:
        assert problem["errors"] == [{
            "field": "id_number", "message": f"This ID number is already registered in household {winner['code']}."
        }]  # fmt: skip
    assert all(HEAD_ID not in r.text for r in responses)
    assert await Member.count() == RACERS + 1


async def test_the_same_id_number_changed_into_two_members_at_once(steward, community, make_household):
    households = [await make_household(community) for _ in range(RACERS)]
    members = [await Member.select(Member.id).where(Member.household == h).first() for h in households]
    client, _ = await steward(community)
    requests = [
        ("PATCH", f"/api/v1/households/{h}/members/{m['id']}", {"id_number": HEAD_ID})
        for h, m in zip(households, members, strict=True)
    ]
    for problem in _one_winner(await _all(client, requests)):
        assert [e["field"] for e in problem["errors"]] == ["id_number"]
        assert problem["errors"][0]["message"].startswith(
            "This ID number is already registered in household T-"
        )


async def test_a_proxy_phone_linked_at_once(steward, community, make_household):
    household_id = await make_household(community)
    client, _ = await steward(community)
    body = {"phone": "13655556666", "display_name": "王小明"}
    responses = await _all(client, [("POST", f"/api/v1/households/{household_id}/proxies", body)] * RACERS)
    # The first creates the account; a later one finds it and links it again (no change), and
    # one that checked before the account existed loses the race on the unique phone.
    assert {r.status_code for r in responses} <= {201, 422}, [r.text for r in responses]
    assert any(r.status_code == 201 for r in responses)
    for response in responses:
        if response.status_code == 422:
            assert [e["field"] for e in response.json()["errors"]] == ["phone"]
    users = await User.select(User.id).where(User.phone == "13655556666")
    assert len(users) == 1
    assert await accounts.linked_users(LinkKind.HOUSEHOLD, household_id) == [users[0]["id"]]
