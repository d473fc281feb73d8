"""ID numbers (GB 11643): length, characters, birth date, check digit (X included), masking."""

from __future__ import annotations

from datetime import date

import pytest

from households import idnumbers
from households.idnumbers import InvalidIdNumber
from tests.helpers import make_id

TODAY = date(2025, 6, 1)


@pytest.mark.parametrize(
    ("raw", "born", "sex"),
    [
        ("11010519491231002X", date(1949, 12, 31), "female"),  # the standard's own example, check digit X
        ("11010519491231002x", date(1949, 12, 31), "female"),  # lower-case x is accepted and upper-cased
        (" 110105 19491231 002X ", date(1949, 12, 31), "female"),  # spaces as typed
        ("１１０１０５１９４９１２３１００２Ｘ", date(1949, 12, 31), "female"),  # full-width characters
        (make_id(date(1940, 2, 29), 13), date(1940, 2, 29), "male"),  # leap day, odd sequence
    ],
)
def test_valid_numbers_give_their_birth_date_and_sex(raw, born, sex):
    parsed = idnumbers.parse(raw, today=TODAY)
    assert parsed.birth_date == born
    assert parsed.sex == sex
    assert len(parsed.value) == 18 and parsed.value == parsed.value.upper()


def test_every_check_digit_value_round_trips():
    seen = set()
    for seq in range(1, 200):
        number = make_id(date(1950, 1, 1), seq)
        seen.add(number[-1])
        assert idnumbers.parse(number, today=TODAY).value == number
    assert seen == set("0123456789X")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "Enter the ID number."),
        ("1101051949123100", "An ID number has 18 characters; this one has %(n)s."),
        ("11010519491231002XX", "An ID number has 18 characters; this one has %(n)s."),
        ("1101051949123100AX", "An ID number has 17 digits followed by a digit or X."),
        ("110105194902300021", "The birth date inside this ID number does not exist."),  # 30 February
        ("110105203001010021", "The birth date inside this ID number is not plausible."),  # born in 2030
        ("110105185001010021", "The birth date inside this ID number is not plausible."),
        ("110105194912310021", "This ID number's check digit does not match: a character was mistyped."),
        ("110105194912310020", "This ID number's check digit does not match: a character was mistyped."),
    ],
)
def test_invalid_numbers_say_what_is_wrong(raw, message):
    with pytest.raises(InvalidIdNumber) as caught:
        idnumbers.parse(raw, today=TODAY)
    assert caught.value.message == message


def test_a_swapped_pair_of_digits_is_caught():
    number = "11010519491231002X"
    swapped = number[:6] + number[7] + number[6] + number[8:]
    with pytest.raises(InvalidIdNumber):
        idnumbers.parse(swapped, today=TODAY)


def test_masking_keeps_four_and_four():
    assert idnumbers.mask("11010519491231002X") == "1101**********002X"
