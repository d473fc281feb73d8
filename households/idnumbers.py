"""Resident identity card numbers (GB 11643-1999): checking, normalising, masking.

Eighteen characters: a six-digit area code, the birth date as YYYYMMDD, a three-digit
sequence (odd for men, even for women) and a check character computed with ISO 7064
MOD 11-2, where 10 is written ``X``.  Plain functions: no database, no web.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from marketplace.i18n import N_

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
EARLIEST_BIRTH = date(1890, 1, 1)


class InvalidIdNumber(ValueError):
    """The number is not a valid identity card number; ``message`` says why (a message id)."""

    def __init__(self, message: str, **params: object) -> None:
        self.message = message
        self.params = params
        super().__init__(message)


@dataclass(frozen=True)
class IdNumber:
    """A checked number and what it says about its holder."""

    value: str
    birth_date: date
    sex: str  # "male" or "female"


def normalise(raw: str) -> str:
    """Upper case, without spaces (full-width characters as typed on Chinese keyboards too)."""
    table = str.maketrans("０１２３４５６７８９ｘＸ", "0123456789XX")
    return "".join((raw or "").translate(table).split()).upper()


def check_character(first17: str) -> str:
    """The 18th character for the first 17 digits."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARS[total % 11]


def parse(raw: str, *, today: date) -> IdNumber:
    """Check a number; raise :class:`InvalidIdNumber` naming the first thing wrong."""
    value = normalise(raw)
    if not value:
        raise InvalidIdNumber(N_("Enter the ID number."))
    if len(value) != 18:
        raise InvalidIdNumber(N_("An ID number has 18 characters; this one has %(n)s."), n=len(value))
    if not value[:17].isdigit() or not (value[17].isdigit() or value[17] == "X"):
        raise InvalidIdNumber(N_("An ID number has 17 digits followed by a digit or X."))
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise InvalidIdNumber(N_("The birth date inside this ID number does not exist.")) from None
    if born < EARLIEST_BIRTH or born > today:
        raise InvalidIdNumber(N_("The birth date inside this ID number is not plausible."))
    if check_character(value[:17]) != value[17]:
        raise InvalidIdNumber(N_("This ID number's check digit does not match: a character was mistyped."))
    sex = "male" if int(value[16]) % 2 else "female"
    return IdNumber(value=value, birth_date=born, sex=sex)


def mask(value: str) -> str:
    """``320113199001011234`` → ``3201**********1234``."""
    if len(value) < 10:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]
