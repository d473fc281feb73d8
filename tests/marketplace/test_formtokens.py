"""One-time form tokens: a form is carried out once however often it is sent."""

from __future__ import annotations

import asyncio

import pytest

from marketplace import formtokens
from marketplace.errors import ValidationFailed


async def test_a_token_is_spent_once():
    token = formtokens.issue(7)
    assert await formtokens.spend(token, 7) is True
    assert await formtokens.spend(token, 7) is False
    assert await formtokens.spend(formtokens.issue(7), 7) is True  # a new form is a new token


async def test_simultaneous_sendings_carry_out_one():
    token = formtokens.issue(3)
    results = await asyncio.gather(*[formtokens.spend(token, 3) for _ in range(10)])
    assert results.count(True) == 1


@pytest.mark.parametrize("case", ["forged", "other user", "expired", "missing"])
async def test_a_bad_token_asks_to_reload_the_form(case):
    token = {
        "forged": formtokens.issue(7)[:-3] + "abc",
        "other user": formtokens.issue(8),
        "expired": formtokens.issue(7, now=0),
        "missing": "",
    }[case]
    with pytest.raises(ValidationFailed) as raised:
        await formtokens.spend(token, 7)
    assert raised.value.errors[0].field == "_form"
