"""The household list's search: short patterns search names, longer ones codes, addresses and names too.

On PostgreSQL every path goes through the search indexes (trigrams, and the characters of
names); the results must be those of a plain substring match, within the caller's scope.
"""

from __future__ import annotations

from datetime import date

from households import services
from households.services import ListFilters
from marketplace.auth import Principal, Role
from tests.helpers import make_id

ADMIN = Principal(user_id=None, role=Role.ADMIN)


def _steward(*community_ids: int) -> Principal:
    return Principal(user_id=None, role=Role.STEWARD, links={"community": frozenset(map(str, community_ids))})


def _member(name: str, seq: int, **extra) -> dict:
    return {"name": name, "id_number": make_id(date(1950, 1, 1), seq), "can_use_phone": True, **extra}


async def _codes(p: Principal, q: str) -> list[str]:
    page = await services.list_households(p, ListFilters(q=q, sort="code"), 1, 50)
    codes = [row["code"] for row in page.items]
    assert page.total == len(codes)
    return codes


async def test_short_and_long_patterns_within_the_stewards_scope(community, other_community, make_household):
    await make_household(community, members=[_member("王桂英", 1), _member("Wang Li", 3)])  # T-0001
    await make_household(community, members=[_member("李桂英", 5, phone="13712345678")])  # T-0002
    await make_household(other_community, members=[_member("王桂英", 7)])  # T-0003, another community
    await make_household(community, members=[_member("赵路", 9)], address="栖霞区和燕路88号")  # T-0004
    steward = _steward(community)

    # One or two characters: names only, in any case.
    assert await _codes(steward, "王") == ["T-0001"]
    assert await _codes(steward, "桂英") == ["T-0001", "T-0002"]
    assert await _codes(steward, "wa") == ["T-0001"]
    assert await _codes(steward, "路") == ["T-0004"]  # the name 赵路, not the addresses on 测试路
    assert await _codes(steward, "张三") == []
    # Three characters or more: codes, addresses and names.
    assert await _codes(steward, "王桂英") == ["T-0001"]
    assert await _codes(steward, "WANG L") == ["T-0001"]
    assert await _codes(steward, "T-000") == ["T-0001", "T-0002", "T-0004"]
    assert await _codes(steward, "t-0002") == ["T-0002"]
    assert await _codes(steward, "和燕路8") == ["T-0004"]
    assert await _codes(steward, "测试路2号") == ["T-0002"]
    # Digits: phone numbers of the household or a member; four characters: the end of an ID number.
    assert await _codes(steward, "2345678") == ["T-0002"]
    assert await _codes(steward, make_id(date(1950, 1, 1), 5)[-4:]) == ["T-0002"]
    assert await _codes(steward, make_id(date(1950, 1, 1), 7)[-4:]) == []  # beyond the scope

    # The administrator reaches the other community too.
    assert await _codes(ADMIN, "王") == ["T-0001", "T-0003"]
    assert await _codes(ADMIN, "王桂英") == ["T-0001", "T-0003"]
    assert await _codes(ADMIN, make_id(date(1950, 1, 1), 7)[-4:]) == ["T-0003"]


async def test_search_combines_with_filters_and_pages(community, make_household):
    for n in range(5):
        await make_household(community, members=[_member(f"陈{'一二三四五'[n]}", 11 + 2 * n)])
    await make_household(community, category="tekun", groups=["elderly_alone"], members=[_member("陈六", 31)])
    steward = _steward(community)

    page = await services.list_households(steward, ListFilters(q="陈", sort="code"), 2, 4)
    assert (page.total, [row["code"] for row in page.items]) == (6, ["T-0005", "T-0006"])
    level_one = await services.list_households(steward, ListFilters(q="陈", level=1), 1, 20)
    assert [row["head_name"] for row in level_one.items] == ["陈六"]
    assert await _codes(steward, "%") == await _codes(steward, "")


async def test_a_scoped_search_finds_what_the_district_search_finds_in_that_scope(
    community, other_community, make_household
):
    """Within communities (a steward's, or the one chosen in the filter) the members' subqueries
    start from the scope's households: every kind of search must find exactly the district's
    matches that lie in the scope."""
    first = make_id(date(1950, 1, 1), 41)
    # Another person born later whose ID number ends the same way.
    twin = next(
        make_id(date(1950, 1, day), 41)
        for day in range(2, 29)
        if make_id(date(1950, 1, day), 41)[-4:] == first[-4:]
    )
    shared_tail = first[-4:]
    where: dict[str, int] = {}
    for n, (cid, name, id_number) in enumerate(
        [
            (community, "王桂英", first),
            (other_community, "王桂英", twin),
            (community, "李明", make_id(date(1950, 1, 1), 43)),
            (other_community, "王明", make_id(date(1950, 1, 1), 45)),
            (other_community, "赵桂兰", make_id(date(1950, 1, 1), 47)),
        ],
        start=1,
    ):
        member = {**_member(name, 0, phone=f"1370000{n:04d}"), "id_number": id_number}
        await make_household(cid, members=[member])
        where[f"T-{n:04d}"] = cid

    patterns = ["王", "明", "桂", "王桂英", "T-000", "测试路3", "13700000", "00002", shared_tail, "张三"]
    for q in patterns:
        district = await _codes(ADMIN, q)
        for cid in (community, other_community):
            expected = [code for code in district if where[code] == cid]
            assert await _codes(_steward(cid), q) == expected, (q, cid)
            chosen = await services.list_households(
                ADMIN, ListFilters(q=q, community_id=cid, sort="code"), 1, 50
            )
            assert [row["code"] for row in chosen.items] == expected, (q, cid)
        assert await _codes(_steward(community, other_community), q) == district, q
    # The patterns above do find households on both sides, so the comparisons are not empty ones.
    assert await _codes(ADMIN, "王") == ["T-0001", "T-0002", "T-0004"]
    assert await _codes(ADMIN, shared_tail) == ["T-0001", "T-0002"]
    assert await _codes(_steward(other_community), "明") == ["T-0004"]
