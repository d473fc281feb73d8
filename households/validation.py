"""Checking what a person typed (or a file held) about a household and its members.

Plain functions shared by the forms, the API and the import: each returns clean values or
raises :class:`ValidationFailed` naming every field at fault, so that a form shows all its
errors at once and an import lists every bad cell of a row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from households import idnumbers
from households.levels import CATEGORIES
from marketplace.errors import FieldError, ValidationFailed
from marketplace.i18n import N_

STATUSES: dict[str, str] = {
    "active": N_("On the registry"),
    "suspended": N_("Suspended"),
    "exited": N_("Exited the programme"),
    "candidate": N_("Candidate: found by monitoring, not yet assessed"),
}
RELATIONS: dict[str, str] = {
    "head": N_("Head of household"),
    "spouse": N_("Spouse"),
    "child": N_("Child"),
    "parent": N_("Parent"),
    "grandchild": N_("Grandchild"),
    "grandparent": N_("Grandparent"),
    "sibling": N_("Brother or sister"),
    "other": N_("Other relative"),
}
SEXES: dict[str, str] = {"male": N_("Male"), "female": N_("Female")}
CONSENT_METHODS: dict[str, str] = {
    "paper": N_("Signed paper form"),
    "in_person": N_("Said so in person to the steward"),
    "online": N_("Agreed online"),
}

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,39}$")
MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
LANDLINE_RE = re.compile(r"^0\d{2,3}-?\d{7,8}$")
# What people write in the cells of civil-affairs exports, mapped to codes.
_WORDS = {
    "男": "male",
    "女": "female",
    "m": "male",
    "f": "female",
    "户主": "head",
    "本人": "head",
    "配偶": "spouse",
    "妻": "spouse",
    "夫": "spouse",
    "子": "child",
    "女儿": "child",
    "儿子": "child",
    "子女": "child",
    "父母": "parent",
    "父亲": "parent",
    "母亲": "parent",
    "孙子女": "grandchild",
    "孙子": "grandchild",
    "孙女": "grandchild",
    "祖父母": "grandparent",
    "兄弟姐妹": "sibling",
    "其他": "other",
    "低保对象": "dibao",
    "低保": "dibao",
    "特困人员": "tekun",
    "特困": "tekun",
    "低保边缘家庭": "dibao_marginal",
    "低保边缘": "dibao_marginal",
    "易返贫致贫人口": "at_risk",
    "支出型困难人口": "expenditure_hardship",
    "其他低收入": "low_income_monitored",
    "独居老人": "elderly_alone",
    "残疾": "disabled",
    "重病": "serious_illness",
    "困境儿童": "child_in_difficulty",
    "单亲": "single_parent",
    "单亲家庭": "single_parent",
}
_TRUE = {"1", "true", "yes", "y", "是", "会", "能", "on"}
_FALSE = {"0", "false", "no", "n", "否", "不会", "不能", "off", ""}


def word(value: Any) -> str:
    """A cell or form value as a code: trimmed, lower case, Chinese words translated."""
    text = str(value if value is not None else "").strip()
    return _WORDS.get(text, text.lower())


def parse_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def parse_date(value: Any) -> date | None:
    """A date from a form (``2024-05-01``), a spreadsheet cell, or ``2024/5/1`` and ``20240501``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip().replace("/", "-").replace(".", "-")
    if re.fullmatch(r"\d{8}", text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    parts = text.split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(text)
    return date(int(parts[0]), int(parts[1]), int(parts[2]))


def normalise_phone(raw: Any) -> str:
    digits = re.sub(r"[\s()]", "", str(raw if raw is not None else ""))
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
    return digits


def _phone(raw: Any, name: str, errors: list[FieldError], *, required: bool) -> str:
    phone = normalise_phone(raw)
    if not phone:
        if required:
            errors.append(FieldError(name, N_("Enter a phone number.")))
        return ""
    if not (MOBILE_RE.match(phone) or LANDLINE_RE.match(phone)):
        errors.append(
            FieldError(
                name, N_("Enter an 11-digit mobile number (13812345678) or a landline (025-85551234).")
            )
        )
    return phone


@dataclass
class HouseholdFields:
    code: str
    community_id: int
    address: str
    phone: str
    category: str
    groups: list[str]
    status: str
    latitude: float | None
    longitude: float | None


@dataclass
class MemberFields:
    name: str
    id_number: str  # checked and normalised; never logged, never shown
    birth_date: date
    sex: str
    relation: str
    phone: str
    disability_grade: int | None
    health: str
    can_use_phone: bool


def _coordinate(raw: Any, name: str, low: float, high: float, errors: list[FieldError]) -> float | None:
    if raw is None or str(raw).strip() == "":
        return None
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        errors.append(
            FieldError(name, N_("Enter a number from %(low)s to %(high)s."), {"low": low, "high": high})
        )
        return None
    return value


def household_fields(
    data: Mapping[str, Any], *, communities: Mapping[int, str] | Mapping[str, int], known_groups: set[str]
) -> HouseholdFields:
    """Clean household fields; ``communities`` are those the caller may use (id → name or code → id)."""
    errors: list[FieldError] = []
    code = str(data.get("code") or "").strip()
    if not code:
        errors.append(FieldError("code", N_("Enter the household code from the civil-affairs registry.")))
    elif not CODE_RE.match(code):
        errors.append(FieldError("code", N_("Use up to 40 letters, digits, hyphens or underscores.")))
    raw_community = data.get("community_id")
    community_id = 0
    try:
        community_id = int(str(raw_community).strip())
    except (TypeError, ValueError):
        community_id = 0
    if community_id not in communities:
        errors.append(FieldError("community_id", N_("Choose one of your communities.")))
    address = str(data.get("address") or "").strip()
    if not address:
        errors.append(FieldError("address", N_("Enter the address.")))
    elif len(address) > 200:
        errors.append(FieldError("address", N_("Keep the address under 200 characters.")))
    phone = _phone(data.get("phone"), "phone", errors, required=True)
    category = word(data.get("category"))
    if category not in CATEGORIES:
        errors.append(FieldError("category", N_("Choose one of the assistance categories.")))
    raw_groups = data.get("groups") or []
    if isinstance(raw_groups, str):
        raw_groups = re.split(r"[;,，、；\s]+", raw_groups)
    groups = sorted({word(g) for g in raw_groups if str(g).strip()})
    unknown = [g for g in groups if g not in known_groups]
    if unknown:
        errors.append(
            FieldError("groups", N_("Unknown need group: %(groups)s."), {"groups": ", ".join(unknown)})
        )
    status = word(data.get("status") or "active")
    if status not in STATUSES:
        errors.append(FieldError("status", N_("Choose a status.")))
    latitude = _coordinate(data.get("latitude"), "latitude", -90.0, 90.0, errors)
    longitude = _coordinate(data.get("longitude"), "longitude", -180.0, 180.0, errors)
    if errors:
        raise ValidationFailed(errors=errors)
    return HouseholdFields(code, community_id, address, phone, category, groups, status, latitude, longitude)


MAX_YEARLY_INCOME = 10_000_000


def yearly_income(raw: Any, errors: list[FieldError]) -> int | None:
    """The household's yearly income in whole yuan, or None when not given."""
    text = str(raw if raw is not None else "").strip().replace(",", "").replace("，", "")
    if not text:
        return None
    try:
        value = int(float(text))
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_YEARLY_INCOME:
        errors.append(
            FieldError("yearly_income", N_("Enter the yearly income in whole yuan, or leave it empty."))
        )
        return None
    return value


def _id_birth_sex(
    data: Mapping[str, Any], today: date, prefix: str, errors: list[FieldError]
) -> idnumbers.IdNumber | None:
    """The checked ID number; the birth date and sex typed beside it must agree with it."""
    parsed: idnumbers.IdNumber | None = None
    try:
        parsed = idnumbers.parse(str(data.get("id_number") or ""), today=today)
    except idnumbers.InvalidIdNumber as exc:
        errors.append(FieldError(f"{prefix}id_number", exc.message, dict(exc.params)))
    try:
        birth = parse_date(data.get("birth_date"))
    except ValueError:
        errors.append(
            FieldError(f"{prefix}birth_date", N_("Enter the date as year-month-day, e.g. 1948-03-15."))
        )
    else:
        if birth is not None and parsed is not None and birth != parsed.birth_date:
            message = N_("The birth date does not match the one in the ID number.")
            errors.append(FieldError(f"{prefix}birth_date", message))
    sex = word(data.get("sex"))
    if sex and sex not in SEXES:
        errors.append(FieldError(f"{prefix}sex", N_("Choose male or female.")))
    elif sex and parsed is not None and sex != parsed.sex:
        errors.append(FieldError(f"{prefix}sex", N_("The sex does not match the one in the ID number.")))
    return parsed


def _disability_grade(raw: Any, name: str, errors: list[FieldError]) -> int | None:
    text = str(raw if raw is not None else "").strip()
    if not text:
        return None
    grade = {"一级": 1, "二级": 2, "三级": 3, "四级": 4}.get(text)
    if grade is None:
        try:
            grade = int(float(text))
        except ValueError:
            grade = None
    if grade not in (1, 2, 3, 4):
        errors.append(FieldError(name, N_("Enter a disability grade from 1 to 4, or leave it empty.")))
        return None
    return grade


def member_fields(data: Mapping[str, Any], *, today: date, prefix: str = "") -> MemberFields:
    """Clean member fields; the birth date and sex must agree with the ID number."""
    errors: list[FieldError] = []
    name = str(data.get("name") or "").strip()
    if not name:
        errors.append(FieldError(f"{prefix}name", N_("Enter the member's name.")))
    elif len(name) > 50:
        errors.append(FieldError(f"{prefix}name", N_("Keep the name under 50 characters.")))
    parsed = _id_birth_sex(data, today, prefix, errors)
    relation = word(data.get("relation") or "head")
    if relation not in RELATIONS:
        errors.append(FieldError(f"{prefix}relation", N_("Choose the relation to the head of household.")))
    phone = _phone(data.get("phone"), f"{prefix}phone", errors, required=False)
    grade = _disability_grade(data.get("disability_grade"), f"{prefix}disability_grade", errors)
    health = str(data.get("health") or "").strip()
    if len(health) > 500:
        errors.append(FieldError(f"{prefix}health", N_("Keep the health notes under 500 characters.")))
    can_use_phone = parse_bool(data.get("can_use_phone"))
    if can_use_phone is None:
        errors.append(FieldError(f"{prefix}can_use_phone", N_("Answer yes or no.")))
    if errors or parsed is None:
        raise ValidationFailed(errors=errors)
    return MemberFields(
        name=name,
        id_number=parsed.value,
        birth_date=parsed.birth_date,
        sex=parsed.sex,
        relation=relation,
        phone=phone,
        disability_grade=grade,
        health=health,
        can_use_phone=bool(can_use_phone),
    )
