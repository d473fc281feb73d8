"""Import from CSV and XLSX: the dry run row by row, all-or-nothing, idempotent, and logs without ID numbers."""

from __future__ import annotations

import csv
import io
import logging
from datetime import date, timedelta

import pytest
from openpyxl import Workbook

from households import importer
from households.tables import Household, HouseholdEvent, ImportJob, ImportRow, Member
from marketplace import clock, crypto
from marketplace.logs import LogfmtFormatter
from marketplace.tables import AuditEvent, OutboxMessage
from tests.conftest import run_jobs
from tests.helpers import make_id

HEADER = [
    "户编号",
    "社区编码",
    "地址",
    "联系电话",
    "救助类别",
    "需求群体",
    "姓名",
    "身份证号",
    "与户主关系",
    "会用手机",
    "残疾等级",
    "健康状况",
]
A1 = make_id(date(1941, 3, 15), 2)
A2 = make_id(date(1944, 6, 1), 11)
B1 = make_id(date(1980, 1, 20), 24)


def rows_for(code_yh: str) -> list[list[str]]:
    return [
        [
            "H-001",
            code_yh,
            "晨光路1号",
            "13900000001",
            "特困人员",
            "独居老人",
            "张桂英",
            A1,
            "户主",
            "否",
            "",
            "高血压",
        ],
        ["H-002", code_yh, "晨光路2号", "025-85550102", "低保", "残疾", "王建国", A2, "户主", "是", "2", ""],
        ["H-002", code_yh, "晨光路2号", "025-85550102", "低保", "残疾", "王小丽", B1, "子女", "是", "", ""],
    ]


def as_csv(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


@pytest.fixture
def community_code(area) -> str:
    return "320113001001"  # 尧化门社区


async def upload(client, content: bytes, name: str = "households.csv", dry_run: bool = True) -> int:
    response = await client.post(
        f"/api/v1/household-imports?dry_run={str(dry_run).lower()}",
        files={"file": (name, content)},
        headers={"x-csrftoken": await client.csrf()},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def job(job_id: int) -> dict:
    return (
        await ImportJob.select(*ImportJob.all_columns(exclude=[ImportJob.content]))
        .where(ImportJob.id == job_id)
        .first()
    )


async def test_dry_run_lists_every_error_with_its_row_and_column_and_writes_nothing(
    steward, community, community_code, worker
):
    client, _ = await steward(community)
    bad_checksum = A1[:-1] + ("0" if A1[-1] != "0" else "1")
    rows = rows_for(community_code) + [
        [
            "H-003",
            community_code,
            "晨光路3号",
            "13900000003",
            "低保",
            "",
            "赵一",
            bad_checksum,
            "户主",
            "是",
            "",
            "",
        ],
        [
            "H-004",
            "999999",
            "晨光路4号",
            "13900000004",
            "低保",
            "",
            "赵二",
            make_id(date(1950, 1, 1), 3),
            "户主",
            "是",
            "",
            "",
        ],
        ["H-005", community_code, "晨光路5号", "13900000005", "低保", "", "赵三", A2, "户主", "是", "", ""],
        [
            "H-006",
            community_code,
            "晨光路6号",
            "",
            "低保",
            "",
            "赵四",
            make_id(date(1950, 1, 1), 5),
            "户主",
            "是",
            "",
            "",
        ],
        [
            "H-007",
            "320113002001",
            "马群1号",
            "13900000007",
            "低保",
            "",
            "赵五",
            make_id(date(1950, 1, 1), 7),
            "户主",
            "是",
            "",
            "",
        ],
        [
            "H-008",
            community_code,
            "晨光路8号",
            "13900000008",
            "火星",
            "外星人",
            "赵六",
            make_id(date(1950, 1, 1), 9),
            "户主",
            "是",
            "",
            "",
        ],
        ["", "", "", "", "", "", "", "", "", "", "", ""],  # blank rows are skipped
    ]
    job_id = await upload(client, as_csv(rows))
    page = await client.get(f"/households/import/{job_id}")
    assert 'http-equiv="refresh"' in page.text  # the page polls until the job is done
    await run_jobs(worker)

    done = await job(job_id)
    assert (done["state"], done["total_rows"], done["processed_rows"]) == ("done", 9, 9)
    assert (done["created_count"], done["error_count"]) == (3, 6)
    outcome = {
        r["row_number"]: r
        for r in await ImportRow.select().where(ImportRow.job == job_id).order_by(ImportRow.row_number)
    }
    assert [outcome[n]["action"] for n in (2, 3, 4)] == ["create"] * 3

    def errors(row: int) -> list[tuple[str, str]]:
        value = outcome[row]["errors"]
        value = __import__("json").loads(value) if isinstance(value, str) else value
        return [(e["column"], e["message"]) for e in value]

    assert errors(5) == [
        ("身份证号", "This ID number's check digit does not match: a character was mistyped.")
    ]
    assert errors(6) == [("社区编码", "Unknown community: %(value)s.")]
    assert errors(7) == [("身份证号", "The same ID number is on row %(row)s.")]
    assert errors(8) == [("联系电话", "Enter a phone number.")]
    assert errors(9) == [("社区编码", "This community is not one of yours: %(value)s.")]
    assert [c for c, _ in errors(10)] == ["救助类别", "需求群体"]
    assert await Household.count() == 0 and await Member.count() == 0

    page = await client.get(
        f"/households/import/{job_id}?errors_only=true", headers={"accept-language": "en"}
    )
    assert "Column “身份证号”: The same ID number is on row 3." in page.text
    assert "Import these rows" not in page.text and A1 not in page.text and bad_checksum not in page.text


async def test_real_run_after_a_dry_run_then_the_same_file_again_changes_nothing(
    steward, community, community_code, worker
):
    client, user = await steward(community)
    content = as_csv(rows_for(community_code))
    # Given a clean dry run, confirmed on the page
    dry = await upload(client, content)
    await run_jobs(worker)
    page = await client.get(f"/households/import/{dry}", headers={"accept-language": "en"})
    assert "Import these rows" in page.text
    applied = await client.post_form(f"/households/import/{dry}/apply")
    assert applied.status_code == 302
    real = int(applied.headers["location"].rsplit("/", 1)[1])
    await run_jobs(worker)

    # Then the households are there, scored, with history, and the file is no longer kept
    finished = await job(real)
    assert (finished["state"], finished["created_count"], finished["error_count"]) == ("done", 3, 0)
    assert (await ImportJob.select(ImportJob.content).where(ImportJob.id == real).first())["content"] is None
    assert (await ImportJob.select(ImportJob.content).where(ImportJob.id == dry).first())["content"] is None
    households = {h["code"]: h for h in await Household.select()}
    assert set(households) == {"H-001", "H-002"}
    assert households["H-001"]["level"] == 1 and households["H-001"]["steward"] == user["id"]
    assert households["H-002"]["level"] == 1  # dibao 2 + grade 2 disability 2 + ... see explanation
    assert await Member.count() == 3
    events_before = await HouseholdEvent.count()
    assert await HouseholdEvent.count().where(HouseholdEvent.kind == "level_computed") == 2
    assert await AuditEvent.count().where(AuditEvent.action == "household.imported") == 1

    # When the same file is imported again (straight to a real run, through the API)
    again = await upload(client, content, dry_run=False)
    await run_jobs(worker)
    second = await job(again)
    assert (second["state"], second["created_count"], second["updated_count"], second["unchanged_count"]) == (
        "done",
        0,
        0,
        3,
    )
    assert await Household.count() == 2 and await Member.count() == 3
    assert await HouseholdEvent.count() == events_before
    assert not await OutboxMessage.exists()

    # And a changed row updates just that member
    changed = rows_for(community_code)
    changed[2][9] = "否"  # 王小丽 no longer uses a phone
    third = await upload(client, as_csv(changed), dry_run=False)
    await run_jobs(worker)
    result = await job(third)
    assert (result["created_count"], result["updated_count"], result["unchanged_count"]) == (0, 1, 2)
    assert (await Member.select(Member.can_use_phone).where(Member.name == "王小丽").first())[
        "can_use_phone"
    ] is False


async def test_a_real_run_with_one_bad_row_writes_nothing(steward, community, community_code, worker):
    client, _ = await steward(community)
    rows = rows_for(community_code)
    rows[1][7] = "12345"
    job_id = await upload(client, as_csv(rows), dry_run=False)
    await run_jobs(worker)
    result = await job(job_id)
    assert (result["state"], result["error_count"]) == ("failed", 1)
    assert await Household.count() == 0 and await Member.count() == 0


async def test_xlsx_files_are_read_and_numbers_that_lost_digits_are_named(
    steward, community, community_code, worker
):
    client, _ = await steward(community)
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(
        [
            "household_code",
            "community",
            "address",
            "phone",
            "category",
            "name",
            "id_number",
            "birth_date",
            "can_use_phone",
        ]
    )
    sheet.append(["X-1", community_code, "路1号", 13900000011, "dibao", "甲", A1, date(1941, 3, 15), "yes"])
    sheet.append(
        [
            "X-2",
            community_code,
            "路2号",
            "13900000012",
            "tekun",
            "乙",
            int(B1[:17] + "0") if B1[-1] != "X" else 11,
            None,
            "no",
        ]
    )
    buffer = io.BytesIO()
    workbook.save(buffer)
    job_id = await upload(client, buffer.getvalue(), name="export.xlsx")
    await run_jobs(worker)
    result = await job(job_id)
    assert (result["file_format"], result["created_count"], result["error_count"]) == ("xlsx", 1, 1)
    bad = await ImportRow.select().where(ImportRow.action == "error").first()
    assert bad["row_number"] == 3 and "saved as a number" in str(bad["errors"])


async def test_a_file_without_the_needed_columns_fails_as_a_whole(steward, community, worker):
    client, _ = await steward(community)
    job_id = await upload(client, as_csv([["1", "2"]], header=["姓名", "电话"]))
    await run_jobs(worker)
    assert (await job(job_id))["state"] == "failed"
    page = await client.get(f"/households/import/{job_id}", headers={"accept-language": "en"})
    assert "The file lacks these columns" in page.text


async def test_imports_are_only_for_their_steward_and_admins(
    steward, community, other_community, community_code, logged_in
):
    client, _ = await steward(community)
    job_id = await upload(client, as_csv(rows_for(community_code)))
    other, _ = await steward(other_community)
    assert (await other.get(f"/households/import/{job_id}")).status_code == 404
    assert (await other.get(f"/api/v1/household-imports/{job_id}")).status_code == 404
    admin, _ = await logged_in("admin")
    assert (await admin.get(f"/api/v1/household-imports/{job_id}")).status_code == 200
    resident, _ = await logged_in("resident")
    assert (await resident.get("/households/import")).status_code == 403
    template = await client.get("/households/import/template.csv")
    assert template.status_code == 200 and "身份证号" in template.text


async def test_no_log_line_holds_an_id_number_name_or_phone(
    steward, community, community_code, worker, caplog
):
    """A full import and an unmasking, with every logger at DEBUG: the ID numbers appear nowhere."""
    caplog.set_level(logging.DEBUG)
    client, _ = await steward(community)
    dry = await upload(client, as_csv(rows_for(community_code)))
    await run_jobs(worker)
    await client.post_form(f"/households/import/{dry}/apply")
    await run_jobs(worker)
    household = await Household.select(Household.id).where(Household.code == "H-001").first()
    member = await Member.select(Member.id).where(Member.household == household["id"]).first()
    shown = await client.post_form(
        f"/households/{household['id']}/members/{member['id']}/reveal", {"reason": "家访核对"}
    )
    assert A1 in shown.text  # the steward saw it ...
    await client.get(f"/api/v1/households?q={A1[-4:]}")
    await client.get(f"/households/{household['id']}")
    formatter = LogfmtFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert len(lines) > 10  # the requests and actor runs were logged
    for secret in (A1, A2, B1, A1[6:14] + A1[14:], "张桂英", "王建国", "13900000001", "高血压"):
        leaking = [line[:300] for line in lines if secret in line]
        assert not leaking, f"log lines hold {secret!r}: {leaking}"  # ... and the logs did not


def _sparse_workbook() -> bytes:
    """Two cells, at A1 and at the last cell a sheet can have: tiny file, enormous extent."""
    import io

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet["A1"] = "户编号"
    sheet["XFD1048576"] = "x"
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def test_a_workbook_reaching_the_last_cell_is_refused_before_it_is_laid_out():
    from households.importer import FileUnreadable, read_rows

    content = _sparse_workbook()
    assert len(content) < 10_000
    with pytest.raises(FileUnreadable) as refused:
        read_rows("xlsx", content)
    assert refused.value.errors[0].params["rows"] == 1048576
    assert refused.value.errors[0].params["columns"] == 16384


def test_a_csv_field_too_long_to_read_is_a_clear_error():
    from households.importer import FileUnreadable, read_rows

    with pytest.raises(FileUnreadable):
        read_rows("csv", ("户编号\n" + "x" * 200_000 + "\n").encode())


async def raw_import_tables() -> str:
    """Every stored byte of the import tables, as text (the file decoded as UTF-8)."""
    jobs = await ImportJob.raw("SELECT * FROM hh_import_job")
    rows = await ImportRow.raw("SELECT * FROM hh_import_row")
    cells = [
        bytes(v).decode("utf-8", "replace") if isinstance(v, bytes | memoryview) else str(v)
        for j in jobs
        for v in j.values()
    ]
    return "\n".join(cells + [str(r) for r in rows])


async def test_the_uploaded_file_is_stored_encrypted_and_dropped(steward, community, community_code, worker):
    client, _ = await steward(community)
    content = as_csv(rows_for(community_code))
    # Given an upload, before and after its dry run
    dry = await upload(client, content)
    stored = await raw_import_tables()
    assert A1 not in stored and "张桂英" not in stored and "高血压" not in stored
    await run_jobs(worker)
    assert (await job(dry))["state"] == "done"
    stored = await raw_import_tables()
    assert A1 not in stored and B1 not in stored and "张桂英" not in stored
    raw = (await ImportJob.select(ImportJob.content).where(ImportJob.id == dry).first())["content"]
    assert raw and bytes(raw) != content
    assert crypto.decrypt_bytes(raw, importer.FILE_CONTEXT) == content
    # A copy of the ciphertext under another purpose does not open
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_bytes(raw, "member.health")

    # A real run that never finished (the worker died on its last try) loses its file after a day
    stuck = ImportJob(filename="x.csv", file_format="csv", content=raw, dry_run=False, state="writing")
    await ImportJob.insert(stuck)
    assert await importer.forget_stale_files() == 0  # neither is a day old
    clock.advance(timedelta(hours=25))
    try:
        assert await importer.forget_stale_files() == 2
    finally:
        clock.reset()
    assert await ImportJob.count().where(ImportJob.content.is_not_null()) == 0
    assert (await job(stuck.id))["state"] == "failed"
    assert (await job(dry))["state"] == "done"
