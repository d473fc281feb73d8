"""Importing households from the civil-affairs database's CSV and XLSX exports.

One file row is one member, with the household's columns repeated on each of its rows.  A
run first checks every row (what it would create or update, and every error with its row
and column), then, for a real run without errors, writes everything in one transaction:
all or nothing.  Households are matched by their code and members by the blind index of
their ID number, so the same file imported twice changes nothing the second time.  Rows
are written with multi-row inserts in batches; progress is kept on the job row, which the
import page polls.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from households import levels, services
from households.levels import HouseholdFacts, MemberFacts, RuleSet
from households.services import HEALTH_CONTEXT, ID_CONTEXT
from households.tables import Community, Household, HouseholdEvent, ImportJob, ImportRow, Member
from households.validation import HouseholdFields, MemberFields, household_fields, member_fields
from marketplace import audit, clock, crypto, db, outbox
from marketplace.auth import Principal, Role
from marketplace.errors import NotFound, ValidationFailed
from marketplace.i18n import N_
from marketplace.pagination import Page, paginate

log = logging.getLogger("cloudmarket.households.import")

MAX_FILE_BYTES = 40 * 1024 * 1024
MAX_ROWS = 200_000
CHECK_BATCH = 1000
INSERT_BATCH = 500
KEEP_DRY_RUN_FILE = timedelta(hours=24)
# The uploaded file is kept encrypted under its own context: a copy elsewhere does not open.
FILE_CONTEXT = "import.file"
ANALYZE_AFTER = 1000  # rows created by one import

# Canonical column → the headers it is known by (compared trimmed and lower-cased).
COLUMNS: dict[str, tuple[str, ...]] = {
    "household_code": ("household_code", "household code", "户编号", "家庭编号", "户编码"),
    "community": ("community", "community_code", "community code", "社区编码", "社区代码", "社区"),
    "address": ("address", "地址", "家庭住址", "住址"),
    "phone": ("phone", "contact phone", "联系电话", "家庭电话"),
    "category": ("category", "救助类别", "类别"),
    "groups": ("groups", "need groups", "need_groups", "需求群体", "困难群体"),
    "status": ("status", "状态"),
    "latitude": ("latitude", "纬度"),
    "longitude": ("longitude", "经度"),
    "name": ("name", "member name", "姓名"),
    "id_number": ("id_number", "id number", "身份证号", "身份证号码", "公民身份号码"),
    "birth_date": ("birth_date", "birth date", "出生日期"),
    "sex": ("sex", "性别"),
    "relation": ("relation", "与户主关系", "关系"),
    "member_phone": ("member_phone", "member phone", "本人电话", "本人手机"),
    "disability_grade": ("disability_grade", "disability grade", "残疾等级"),
    "health": ("health", "health conditions", "健康状况"),
    "can_use_phone": ("can_use_phone", "can use phone", "会用手机", "能否使用手机"),
}
REQUIRED = ("household_code", "community", "address", "phone", "category", "name", "id_number")
TEMPLATE_HEADERS = (
    "户编号", "社区编码", "地址", "联系电话", "救助类别", "需求群体", "姓名", "身份证号",
    "出生日期", "性别", "与户主关系", "本人电话", "残疾等级", "健康状况", "会用手机",
)  # fmt: skip
# Which file column a validation error of a field belongs to.
HOUSEHOLD_FIELD_COLUMN = {"code": "household_code", "community_id": "community"}
MEMBER_FIELD_COLUMN = {"phone": "member_phone"}
HOUSEHOLD_KEYS = (
    "household_code",
    "community",
    "address",
    "phone",
    "category",
    "groups",
    "status",
    "latitude",
    "longitude",
)


class FileUnreadable(ValidationFailed):
    """The upload as a whole cannot be read (not CSV or XLSX, no header, missing columns)."""


# -- reading files ---------------------------------------------------------------------------------


def detect_format(filename: str, content: bytes) -> str:
    if content[:4] == b"PK\x03\x04" or filename.lower().endswith(".xlsx"):
        return "xlsx"
    return "csv"


def _decode(content: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise FileUnreadable.field(
        "file", N_("The file is neither UTF-8 nor GBK text; save it as CSV (UTF-8) or XLSX.")
    )


def read_rows(file_format: str, content: bytes) -> list[tuple[Any, ...]]:
    """Every row of the file's first sheet, header included, as tuples of cell values."""
    if file_format == "xlsx":
        return _read_xlsx(content)
    try:
        return [tuple(row) for row in csv.reader(io.StringIO(_decode(content)))]
    except csv.Error as exc:  # e.g. a field longer than the reader allows
        raise FileUnreadable.field(
            "file", N_("The file could not be read as CSV; check it in a spreadsheet.")
        ) from exc


MAX_COLUMNS = 64
MAX_UNZIPPED_BYTES = 512 * 1024 * 1024
_CELL_REF = re.compile(rb'<c[^>]*?\sr="([A-Z]{1,3})([0-9]{1,7})"')


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + (letter - 64)
    return number


def check_xlsx_extent(content: bytes) -> None:
    """Refuse workbooks whose sheets reach too far before the reader builds them in memory.

    The XLSX reader lays a sheet out as a dense grid from its first cell to its last: two
    cells at A1 and XFD1048576 in a 5 KB file would ask for hundreds of gigabytes and abort
    the process.  The cell references in the sheet XML tell the extent without building it.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        sheets = [
            i
            for i in archive.infolist()
            if i.filename.startswith("xl/worksheets/") and i.filename.endswith(".xml")
        ]
        if sum(i.file_size for i in archive.infolist()) > MAX_UNZIPPED_BYTES:
            raise FileUnreadable.field("file", N_("The workbook is too large once unpacked; split it."))
        for info in sheets:
            last_row = last_column = 0
            for letters, digits in _CELL_REF.findall(archive.read(info)):
                last_column = max(last_column, _column_number(letters))
                last_row = max(last_row, int(digits))
            if last_column > MAX_COLUMNS or last_row > MAX_ROWS + 1:
                raise FileUnreadable.field(
                    "file",
                    N_(
                        "A sheet of the workbook reaches row %(rows)s, column %(columns)s; "
                        "keep the data within %(max_rows)s rows and %(max_columns)s columns."
                    ),
                    rows=last_row,
                    columns=last_column,
                    max_rows=MAX_ROWS,
                    max_columns=MAX_COLUMNS,
                )
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        if isinstance(exc, FileUnreadable):
            raise
        raise FileUnreadable.field("file", N_("The file could not be opened as an XLSX workbook.")) from exc


def _read_xlsx(content: bytes) -> list[tuple[Any, ...]]:
    # python-calamine (Rust) reads 50,000 rows in about 1.5 s where openpyxl took 26 to 42 s.
    from python_calamine import CalamineWorkbook

    check_xlsx_extent(content)
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(content))
        rows = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except Exception as exc:
        raise FileUnreadable.field("file", N_("The file could not be opened as an XLSX workbook.")) from exc
    return [tuple(row) for row in rows]


def map_header(header: Iterable[Any]) -> tuple[dict[str, int], dict[str, str]]:
    """Canonical column → position, and canonical column → the header text as the file has it."""
    known = {alias: canonical for canonical, aliases in COLUMNS.items() for alias in aliases}
    positions: dict[str, int] = {}
    labels: dict[str, str] = {}
    for index, cell in enumerate(header):
        text = str(cell if cell is not None else "").strip()
        canonical = known.get(text.lower()) or known.get(text)
        if canonical and canonical not in positions:
            positions[canonical] = index
            labels[canonical] = text
    missing = [name for name in REQUIRED if name not in positions]
    if missing:
        names = ", ".join(
            f"{COLUMNS[m][0]} / {COLUMNS[m][3] if len(COLUMNS[m]) > 3 else COLUMNS[m][-1]}" for m in missing
        )
        raise FileUnreadable.field("file", N_("The file lacks these columns: %(columns)s."), columns=names)
    return positions, labels


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    return value


def records(rows: list[tuple[Any, ...]], positions: dict[str, int]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(spreadsheet row number, canonical column → value) for each non-blank data row."""
    for offset, row in enumerate(rows[1:], start=2):
        if not any(str(v).strip() for v in row if v is not None):
            continue
        yield offset, {name: _cell(row[i]) if i < len(row) else None for name, i in positions.items()}


# -- checking ------------------------------------------------------------------------------------


@dataclass
class RowOutcome:
    row_number: int
    household_code: str
    action: str = "create"  # create, update, unchanged, error
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MemberPlan:
    row: RowOutcome
    fields: MemberFields
    index: str
    existing: dict[str, Any] | None = None
    changed: bool = True


@dataclass
class HouseholdPlan:
    fields: HouseholdFields
    first_row: int
    signature: tuple[Any, ...]
    existing: dict[str, Any] | None = None
    changed: bool = True
    members: list[MemberPlan] = field(default_factory=list)


@dataclass
class Plan:
    rows: list[RowOutcome] = field(default_factory=list)
    households: dict[str, HouseholdPlan] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(1 for row in self.rows if row.errors)


def _error(outcome: RowOutcome, labels: dict[str, str], column: str, message: str, **params: Any) -> None:
    outcome.errors.append({"column": labels.get(column, column), "message": message, "params": params})
    outcome.action = "error"


def _member_signature(fields: MemberFields) -> tuple[Any, ...]:
    return (
        fields.name,
        fields.birth_date,
        fields.sex,
        fields.relation,
        fields.phone,
        fields.disability_grade,
        fields.health,
        fields.can_use_phone,
    )


def _stored_member_signature(row: dict[str, Any]) -> tuple[Any, ...]:
    health = crypto.decrypt(row["health_cipher"], HEALTH_CONTEXT) if row["health_cipher"] else ""
    return (
        row["name"],
        row["birth_date"],
        row["sex"],
        row["relation"],
        row["phone"],
        row["disability_grade"],
        health,
        row["can_use_phone"],
    )


class Checker:
    """Checks rows batch by batch against the file so far and the registry."""

    def __init__(
        self,
        *,
        labels: dict[str, str],
        communities: dict[str, int],
        community_names: dict[str, int],
        scope: set[int] | None,
        known_groups: set[str],
        today: date,
    ) -> None:
        self.labels = labels
        self.communities = communities
        self.community_names = community_names
        self.scope = scope
        self.allowed = {cid: code for code, cid in communities.items() if scope is None or cid in scope}
        self.known_groups = known_groups
        self.today = today
        self.plan = Plan()
        self.seen_ids: dict[str, int] = {}

    def _community_id(self, row: RowOutcome, raw: Any) -> int | None:
        text = str(raw if raw is not None else "").strip()
        cid = self.communities.get(text) or self.community_names.get(text)
        if cid is None:
            _error(row, self.labels, "community", N_("Unknown community: %(value)s."), value=text[:30])
            return None
        if self.scope is not None and cid not in self.scope:
            _error(
                row,
                self.labels,
                "community",
                N_("This community is not one of yours: %(value)s."),
                value=text[:30],
            )
            return None
        return cid

    def _check_row(
        self, number: int, record: dict[str, Any]
    ) -> tuple[RowOutcome, HouseholdFields | None, MemberPlan | None]:
        code = str(record.get("household_code") or "").strip()
        row = RowOutcome(row_number=number, household_code=code[:40])
        community_id = self._community_id(row, record.get("community"))
        household: HouseholdFields | None = None
        data = {
            "code": code,
            "community_id": community_id,
            "address": record.get("address"),
            "phone": record.get("phone"),
            "category": record.get("category"),
            "groups": record.get("groups") or "",
            "status": record.get("status") or "active",
            "latitude": record.get("latitude"),
            "longitude": record.get("longitude"),
        }
        if isinstance(data["phone"], int | float):
            data["phone"] = str(int(data["phone"]))
        try:
            household = household_fields(data, communities=self.allowed, known_groups=self.known_groups)
        except ValidationFailed as exc:
            for error in exc.errors:
                if error.field == "community_id":
                    continue  # _community_id said precisely what is wrong
                column = HOUSEHOLD_FIELD_COLUMN.get(error.field, error.field)
                _error(row, self.labels, column, error.message, **error.params)
        member_data = {
            "name": record.get("name"),
            "id_number": record.get("id_number"),
            "birth_date": record.get("birth_date"),
            "sex": record.get("sex"),
            "relation": record.get("relation") or "head",
            "phone": record.get("member_phone"),
            "disability_grade": record.get("disability_grade"),
            "health": record.get("health"),
            "can_use_phone": record.get("can_use_phone"),
        }
        if isinstance(member_data["phone"], int | float):
            member_data["phone"] = str(int(member_data["phone"]))
        member: MemberPlan | None = None
        if isinstance(member_data["id_number"], int | float):
            # Excel keeps numbers as doubles: an 18-digit number has already lost its last digits.
            _error(
                row,
                self.labels,
                "id_number",
                N_(
                    "The ID number was saved as a number, which loses digits: "
                    "format the column as text and export again."
                ),
            )
            member_data["id_number"] = ""
        try:
            fields = member_fields(member_data, today=self.today)
            member = MemberPlan(
                row=row, fields=fields, index=crypto.blind_index(fields.id_number, ID_CONTEXT)
            )
        except ValidationFailed as exc:
            for error in exc.errors:
                if error.field == "id_number" and any(
                    e["column"] == self.labels.get("id_number") for e in row.errors
                ):
                    continue
                column = MEMBER_FIELD_COLUMN.get(error.field, error.field)
                _error(row, self.labels, column, error.message, **error.params)
        if member is not None:
            earlier = self.seen_ids.get(member.fields.id_number)
            if earlier is not None:
                _error(
                    row, self.labels, "id_number", N_("The same ID number is on row %(row)s."), row=earlier
                )
                member = None
            else:
                self.seen_ids[member.fields.id_number] = number
        return row, household, member

    async def check_batch(self, batch: list[tuple[int, dict[str, Any]]]) -> None:
        checked = [self._check_row(number, record) for number, record in batch]
        new_codes = sorted(
            {h.code for _, h, _ in checked if h is not None and h.code not in self.plan.households}
        )
        existing_households: dict[str, dict[str, Any]] = {}
        if new_codes:
            for stored in await Household.select().where(Household.code.is_in(new_codes)):
                existing_households[stored["code"]] = stored
        indexes = [m.index for _, _, m in checked if m is not None]
        existing_members: dict[str, dict[str, Any]] = {}
        if indexes:
            # Two indexed lookups rather than a join: right after a bulk load the planner's
            # statistics are stale and it may pick a join that scans every household per member.
            found = await Member.select().where(Member.id_index.is_in(indexes))
            owners: dict[int, dict[str, Any]] = {}
            if found:
                household_ids = sorted({m["household"] for m in found})
                for owner in await Household.select(Household.id, Household.code, Household.community).where(
                    Household.id.is_in(household_ids)
                ):
                    owners[owner["id"]] = owner
            for stored in found:
                owner = owners[stored["household"]]
                stored["household_code"], stored["household_community"] = owner["code"], owner["community"]
                existing_members[stored["id_index"]] = stored
        for row, household, member in checked:
            self.plan.rows.append(row)
            if household is None or member is None:
                row.action = "error"
                continue
            self._place(row, household, member, existing_households, existing_members)

    def _place(
        self,
        row: RowOutcome,
        household: HouseholdFields,
        member: MemberPlan,
        existing_households: dict[str, dict[str, Any]],
        existing_members: dict[str, dict[str, Any]],
    ) -> None:
        """Add a checked row to its household's plan, or record why it cannot be."""
        plan = self._household_plan(row, household, existing_households)
        if plan is None:
            return
        known = existing_members.get(member.index)
        if known is not None and known["household_code"] != household.code:
            if self.scope is None or known["household_community"] in self.scope:
                message = N_("This ID number is registered in household %(code)s.")
                _error(row, self.labels, "id_number", message, code=known["household_code"])
            else:  # the other household is beyond this steward's reach: say no more
                message = N_("This ID number is registered in a household of another community.")
                _error(row, self.labels, "id_number", message)
            return
        if known is not None:
            member.existing = known
            member.changed = _stored_member_signature(known) != _member_signature(member.fields)
        plan.members.append(member)
        if member.existing is None:
            row.action = "create" if plan.existing is None else "update"
        elif member.changed or plan.changed:
            row.action = "update"
        else:
            row.action = "unchanged"

    def _household_plan(
        self, row: RowOutcome, fields: HouseholdFields, existing: dict[str, dict[str, Any]]
    ) -> HouseholdPlan | None:
        values = services._household_values(fields)
        signature = tuple(values.values())
        plan = self.plan.households.get(fields.code)
        if plan is not None:
            if plan.signature != signature:
                _error(
                    row,
                    self.labels,
                    "household_code",
                    N_("The household columns differ from row %(row)s of the same household."),
                    row=plan.first_row,
                )
                return None
            return plan
        stored = existing.get(fields.code)
        if stored is not None:
            if self.scope is not None and stored["community"] not in self.scope:
                _error(
                    row,
                    self.labels,
                    "household_code",
                    N_("This household code is registered in a community that is not yours."),
                )
                return None
            if stored["erased_at"] is not None:
                _error(
                    row,
                    self.labels,
                    "household_code",
                    N_("This household's data was erased; it cannot be imported again under the same code."),
                )
                return None
        plan = HouseholdPlan(fields=fields, first_row=row.row_number, signature=signature, existing=stored)
        if stored is not None:
            plan.changed = any(stored[column._meta.name] != value for column, value in values.items())
        self.plan.households[fields.code] = plan
        return plan


# -- running a job -------------------------------------------------------------------------------


async def _progress(job_id: int, **values: Any) -> None:
    await ImportJob.update({getattr(ImportJob, k): v for k, v in values.items()}).where(
        ImportJob.id == job_id
    )


async def _scope_of(job: dict[str, Any]) -> set[int] | None:
    from marketplace import accounts

    if job["created_by"] is None:
        return None
    principal = await accounts.principal_for_user(job["created_by"])
    if principal is None:
        return set()
    return services.community_scope(principal)


async def check(job: dict[str, Any], content: bytes) -> Plan:
    """Read and check the whole file, updating the job's progress; raises FileUnreadable."""
    rows = read_rows(job["file_format"], content)
    if not rows:
        raise FileUnreadable.field("file", N_("The file is empty."))
    positions, labels = map_header(rows[0])
    data = list(records(rows, positions))
    if len(data) > MAX_ROWS:
        raise FileUnreadable.field("file", N_("The file has more than %(n)s rows; split it."), n=MAX_ROWS)
    await _progress(job["id"], state="checking", total_rows=len(data), processed_rows=0)
    community_rows = await Community.select(Community.id, Community.code, Community.name)
    names: dict[str, int] = {}
    for c in community_rows:
        names[c["name"]] = c["id"] if c["name"] not in names else -1  # ambiguous names do not match
    checker = Checker(
        labels=labels,
        communities={c["code"]: c["id"] for c in community_rows},
        community_names={n: cid for n, cid in names.items() if cid > 0},
        scope=await _scope_of(job),
        known_groups=await services.known_group_codes(),
        today=clock.local_now().date(),
    )
    for start in range(0, len(data), CHECK_BATCH):
        await checker.check_batch(data[start : start + CHECK_BATCH])
        await _progress(job["id"], processed_rows=min(start + CHECK_BATCH, len(data)))
    return checker.plan


def _household_record(
    plan: HouseholdPlan, assessment: levels.Assessment, steward: int | None, now: datetime
) -> dict[str, Any]:
    values = {column._meta.name: value for column, value in services._household_values(plan.fields).items()}
    return {
        **values,
        "steward": steward,
        "level": assessment.level,
        "computed_level": assessment.level,
        "level_points": assessment.points,
        "level_explanation": assessment.explanation(),
        "created_at": now,
        "updated_at": now,
    }


def _member_record(household_id: int, fields: MemberFields, now: datetime) -> dict[str, Any]:
    values = {column._meta.name: value for column, value in services._encrypt_member(fields).items()}
    return {**values, "household": household_id, "created_at": now, "updated_at": now}


def _event(household_id: int, actor: int | None, now: datetime, kind: str, **fields: Any) -> dict[str, Any]:
    return {"household": household_id, "actor": actor, "at": now, "kind": kind, **fields}


async def _ids_by_code(codes: list[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for start in range(0, len(codes), CHECK_BATCH):
        rows = await Household.select(Household.id, Household.code).where(
            Household.code.is_in(codes[start : start + CHECK_BATCH])
        )
        ids.update({row["code"]: row["id"] for row in rows})
    return ids


async def _level_event_ids(household_ids: list[int]) -> list[int]:
    ids: list[int] = []
    for start in range(0, len(household_ids), CHECK_BATCH):
        rows = await HouseholdEvent.select(HouseholdEvent.id).where(
            HouseholdEvent.household.is_in(household_ids[start : start + CHECK_BATCH])
            & (HouseholdEvent.kind == "level_computed")
        )
        ids += [row["id"] for row in rows]
    return sorted(ids)


async def write(job: dict[str, Any], plan: Plan, rules: RuleSet) -> list[int]:
    """Write the plan (inside the caller's transaction); returns the level-change event ids.

    New households, their members and their first history rows go in with bulk inserts;
    households that existed are changed row by row and scored again as any edit would be.
    """
    now = clock.now()
    today = clock.local_now().date()
    actor = job["created_by"]
    steward = actor if actor is not None and await _is_steward(actor) else None
    new_plans = [p for p in plan.households.values() if p.existing is None]
    assessments = [levels.assess(_facts(p), rules, today) for p in new_plans]
    await db.bulk_insert(
        Household,
        [_household_record(p, a, steward, now) for p, a in zip(new_plans, assessments, strict=True)],
    )
    ids = await _ids_by_code([p.fields.code for p in new_plans])
    members: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    source = {"import_job": job["id"]}
    for p, assessment in zip(new_plans, assessments, strict=True):
        household_id = ids[p.fields.code]
        members += [_member_record(household_id, m.fields, now) for m in p.members]
        events.append(_event(household_id, actor, now, "created", to_value=p.fields.status, detail=source))
        explained = {
            "explanation": assessment.explanation(),
            "effective_from": None,
            "effective_to": assessment.level,
        }
        events.append(
            _event(
                household_id, actor, now, "level_computed", to_value=str(assessment.level), detail=explained
            )
        )
    rescore_ids = await _update_existing(
        plan, actor=actor, now=now, members=members, events=events, source=source
    )
    await db.bulk_insert(Member, members)
    await db.bulk_insert(HouseholdEvent, events)
    changed = await _level_event_ids(sorted(ids.values()))
    await services.announce(changed)
    for start in range(0, len(rescore_ids), INSERT_BATCH):
        batch = rescore_ids[start : start + INSERT_BATCH]
        changed += await services.rescore(batch, actor=actor, rules=rules)
    return changed


def _facts(plan: HouseholdPlan) -> HouseholdFacts:
    return HouseholdFacts(
        category=plan.fields.category,
        groups=frozenset(plan.fields.groups),
        members=tuple(
            MemberFacts(m.fields.birth_date, m.fields.disability_grade, m.fields.can_use_phone)
            for m in plan.members
        ),
    )


async def _update_existing(
    plan: Plan,
    *,
    actor: int | None,
    now: datetime,
    members: list[dict[str, Any]],
    events: list[dict[str, Any]],
    source: dict[str, Any],
) -> list[int]:
    """Change the households that existed (row by row: re-imports change few); returns those to rescore."""
    rescore_ids: list[int] = []
    for p in plan.households.values():
        if p.existing is None:
            continue
        household_id = p.existing["id"]
        touched = False
        if p.changed:
            values = {**services._household_values(p.fields), Household.updated_at: now}
            await Household.update(values).where(Household.id == household_id)
            events.append(_event(household_id, actor, now, "updated", detail=source))
            touched = True
        for m in p.members:
            if m.existing is None:
                members.append(_member_record(household_id, m.fields, now))
                events.append(_event(household_id, actor, now, "member_added", detail=source))
                touched = True
            elif m.changed:
                values = {**services._encrypt_member(m.fields), Member.updated_at: now}
                await Member.update(values).where(Member.id == m.existing["id"])
                detail = {**source, "member_id": m.existing["id"]}
                events.append(_event(household_id, actor, now, "member_updated", detail=detail))
                touched = True
        if touched:
            rescore_ids.append(household_id)
    return rescore_ids


async def _is_steward(user_id: int) -> bool:
    from marketplace.tables import User

    return bool(await User.exists().where((User.id == user_id) & (User.role == Role.STEWARD.value)))


async def _save_rows(job_id: int, rows: list[RowOutcome]) -> None:
    await ImportRow.delete().where(ImportRow.job == job_id)
    records = [
        {"job": job_id, "row_number": r.row_number, "household_code": r.household_code, "action": r.action}
        | {"errors": r.errors}
        for r in rows
    ]
    await db.bulk_insert(ImportRow, records)


async def run(job_id: int) -> None:
    """Check the job's file and, for a real run without errors, write it; safe to run twice."""
    job = await ImportJob.select().where(ImportJob.id == job_id).first()
    if job is None or job["state"] in ("done", "failed"):
        return
    started = clock.now()
    try:
        plan = await check(job, file_content(job["content"]))
    except FileUnreadable as exc:
        await _progress(
            job_id, state="failed", message=_message_json(exc), finished_at=clock.now(), content=None
        )
        log.info("import file unreadable", extra={"job_id": job_id})
        return
    except Exception:
        # A file no check foresaw: fail the job (and drop the file) rather than retry it forever.
        log.exception("import check failed", extra={"job_id": job_id})
        unreadable = FileUnreadable.field(
            "file", N_("The file could not be read as CSV; check it in a spreadsheet.")
        )
        await _progress(
            job_id, state="failed", message=_message_json(unreadable), finished_at=clock.now(), content=None
        )
        return
    counts = {
        "created_count": sum(1 for r in plan.rows if r.action == "create"),
        "updated_count": sum(1 for r in plan.rows if r.action == "update"),
        "unchanged_count": sum(1 for r in plan.rows if r.action == "unchanged"),
        "error_count": plan.error_count,
    }
    if job["dry_run"] or plan.error_count:
        async with db.atomic():
            await _save_rows(job_id, plan.rows)
            await _progress(
                job_id, state="done" if job["dry_run"] else "failed", finished_at=clock.now(), **counts
            )
            if not job["dry_run"]:
                await _progress(job_id, content=None)
        log.info(
            "import checked", extra={"job_id": job_id, "rows": len(plan.rows), "errors": plan.error_count}
        )
        return
    await _progress(job_id, state="writing")
    rules = await services.current_rules()
    async with db.atomic():
        changed = await write(job, plan, rules)
        await _save_rows(job_id, plan.rows)
        await _progress(job_id, state="done", finished_at=clock.now(), content=None, **counts)
        await audit.record(
            "household.imported",
            user_id=job["created_by"],
            target_type="import_job",
            target_id=job_id,
            created=counts["created_count"],
            updated=counts["updated_count"],
        )
    if db.is_postgres() and counts["created_count"] >= ANALYZE_AFTER:
        # Fresh statistics, so that the next queries plan for the rows just loaded.
        await db.engine().run_ddl("ANALYZE hh_household, hh_member, hh_household_event")
    log.info(
        "import written",
        extra={
            "job_id": job_id,
            "rows": len(plan.rows),
            "households": len(plan.households),
            "level_changes": len(changed),
            "seconds": round((clock.now() - started).total_seconds(), 2),
        },
    )


def file_content(stored: bytes | None) -> bytes:
    """The uploaded file as the user sent it, from its encrypted copy."""
    if stored is None:
        raise FileUnreadable.field("file", N_("The uploaded file is no longer kept; upload it again."))
    try:
        return crypto.decrypt_bytes(stored, FILE_CONTEXT)
    except crypto.DecryptionError as exc:
        message = N_("The uploaded file can no longer be read (the data key changed); upload it again.")
        raise FileUnreadable.field("file", message) from exc


async def give_up(job_id: int) -> None:
    """The last try of a real run failed: the job is failed and its file dropped."""
    message = FileUnreadable.field(
        "file", N_("The import failed; nothing was written. Upload the file again.")
    )
    await ImportJob.update(
        {
            ImportJob.state: "failed",
            ImportJob.message: _message_json(message),
            ImportJob.finished_at: clock.now(),
            ImportJob.content: None,
        }
    ).where((ImportJob.id == job_id) & ImportJob.state.not_in(["done", "failed"]))


def _message_json(exc: ValidationFailed) -> str:
    import json

    return json.dumps([{"message": e.message, "params": e.params} for e in exc.errors], default=str)


# -- what people call ----------------------------------------------------------------------------


async def start(p: Principal, *, filename: str, content: bytes, dry_run: bool = True) -> int:
    """Upload a file: a job is queued to check it (and, if not a dry run, import it)."""
    if p.role not in (Role.STEWARD, Role.ADMIN):
        raise NotFound()
    if not content:
        raise ValidationFailed.field("file", N_("Choose a CSV or XLSX file to upload."))
    if len(content) > MAX_FILE_BYTES:
        raise ValidationFailed.field("file", N_("The file is larger than 40 MB; split it."))
    from households import tasks

    async with db.atomic():
        job = ImportJob(
            created_by=p.user_id,
            filename=(filename or "upload")[:200],
            file_format=detect_format(filename or "", content),
            content=crypto.encrypt_bytes(content, FILE_CONTEXT),
            dry_run=dry_run,
        )
        await ImportJob.insert(job)
        await outbox.send(tasks.run_import, job.id)
    return int(job.id)


async def job_for(p: Principal, job_id: int) -> dict[str, Any]:
    """An import job its creator (or an admin) may see."""
    if p.role not in (Role.STEWARD, Role.ADMIN):
        raise NotFound()
    job = (
        await ImportJob.select(*ImportJob.all_columns(exclude=[ImportJob.content]))
        .where(ImportJob.id == job_id)
        .first()
    )
    if job is None or (not services.is_admin(p) and job["created_by"] != p.user_id):
        raise NotFound()
    return job


async def job_rows(p: Principal, job_id: int, *, only_errors: bool, page: int, per_page: int = 50) -> Page:
    await job_for(p, job_id)
    query = ImportRow.select().where(ImportRow.job == job_id).order_by(ImportRow.row_number)
    count = ImportRow.count().where(ImportRow.job == job_id)
    if only_errors:
        query = query.where(ImportRow.action == "error")
        count = count.where(ImportRow.action == "error")
    result = await paginate(query, count, page, per_page)
    import json

    for row in result.items:
        if isinstance(row["errors"], str):
            row["errors"] = json.loads(row["errors"])
    return result


async def apply(p: Principal, job_id: int) -> int:
    """Carry out a dry run that found no errors: a real run of the same file."""
    job = await job_for(p, job_id)
    if not job["dry_run"] or job["state"] != "done" or job["error_count"]:
        raise ValidationFailed.field("file", N_("Only a finished dry run without errors can be imported."))
    from households import tasks

    async with db.atomic():
        stored = await ImportJob.select(ImportJob.content).where(ImportJob.id == job_id).first()
        if stored is None or stored["content"] is None:
            raise NotFound(N_("The uploaded file is no longer kept; upload it again."))
        real = ImportJob(
            created_by=p.user_id,
            filename=job["filename"],
            file_format=job["file_format"],
            content=stored["content"],
            dry_run=False,
        )
        await ImportJob.insert(real)
        await ImportJob.update({ImportJob.content: None}).where(ImportJob.id == job_id)
        await outbox.send(tasks.run_import, real.id)
    return int(real.id)


async def recent_jobs(p: Principal) -> list[dict[str, Any]]:
    if p.role not in (Role.STEWARD, Role.ADMIN):
        raise NotFound()
    query = (
        ImportJob.select(*ImportJob.all_columns(exclude=[ImportJob.content]))
        .order_by(ImportJob.id, ascending=False)
        .limit(10)
    )
    if not services.is_admin(p):
        query = query.where(ImportJob.created_by == p.user_id)
    return await query


async def forget_stale_files() -> int:
    """Clear uploaded files of dry runs older than a day, and of real runs still unfinished after a day."""
    cutoff = clock.now() - KEEP_DRY_RUN_FILE
    stale = ImportJob.content.is_not_null() & (ImportJob.created_at < cutoff)
    lost = await ImportJob.select(ImportJob.id).where(
        stale & (ImportJob.dry_run == False) & ImportJob.state.not_in(["done", "failed"])  # noqa: E712
    )
    for job in lost:
        await give_up(job["id"])
    cleared = (
        await ImportJob.update({ImportJob.content: None})
        .where(stale & ImportJob.state.is_in(["done", "failed"]))
        .returning(ImportJob.id)
    )
    return len(cleared) + len(lost)


def template_csv() -> bytes:
    """An empty file with the expected headers, for stewards to fill in."""
    out = io.StringIO()
    csv.writer(out).writerow(TEMPLATE_HEADERS)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def file_errors(job: dict[str, Any]) -> list[str]:
    """What made a whole file unreadable, in the reader's language."""
    import json

    from marketplace.i18n import gettext

    if job["state"] != "failed" or not job["message"]:
        return []
    return [gettext(e["message"], **e.get("params", {})) for e in json.loads(job["message"])]


def error_text(errors: list[dict[str, Any]]) -> list[tuple[str, str]]:
    from marketplace.i18n import gettext

    return [(e["column"], gettext(e["message"], **e.get("params", {}))) for e in errors]
