"""Household import: 50,000 generated member rows into PostgreSQL, dry run, real run, again.

    .venv/bin/python -m bench import_households        (BENCH_IMPORT_ROWS changes the count)

A fresh database is migrated and given the demo district; a CSV of valid rows (about 2.5
members per household across the 27 demo communities) is then, on the same file, checked
(dry run), imported (all or nothing, one transaction) and imported again (idempotent:
nothing changes).  The runs call the import as the ``run_import`` actor does, without the
queue around it.  Also times reading the same rows from an XLSX file.  The measuring runs
in a child process, so that the settings are read with the benchmark's own database.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import random
import sys
import time
from datetime import date, timedelta

ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "50000"))


SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "桂英秀兰建国志强丽娟海燕明华玉梅小宇文杰淑珍国庆红梅德胜春花永福金凤宝山"
CATEGORIES = ["dibao", "tekun", "dibao_marginal", "at_risk", "expenditure_hardship", "low_income_monitored"]
GROUPS = ["elderly_alone", "disabled", "serious_illness", "child_in_difficulty", "single_parent", ""]
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
    "本人电话",
    "残疾等级",
    "健康状况",
    "会用手机",
]


def generate(rows: int, community_codes: list[str]) -> list[list[str]]:
    from households.idnumbers import check_character

    rng = random.Random(7)
    out: list[list[str]] = []
    household = 0
    while len(out) < rows:
        household += 1
        size = min(rng.choice((1, 1, 2, 2, 3, 4)), rows - len(out))
        code = f"BJ-{household:07d}"
        community = rng.choice(community_codes)
        phone = f"139{household:08d}"
        category = rng.choice(CATEGORIES)
        groups = rng.choice(GROUPS)
        for m in range(size):
            i = len(out)
            born = date(1935, 1, 1) + timedelta(days=i % 25_000)
            first17 = f"320113{born:%Y%m%d}{i // 25_000 + 1:03d}"
            out.append([
                code, community, f"栖霞区测试路{household}号", phone, category, groups,
                rng.choice(SURNAMES) + "".join(rng.sample(GIVEN, 2)), first17 + check_character(first17),
                "户主" if m == 0 else rng.choice(["配偶", "子女", "孙子女", "父母"]),
                f"137{i:08d}" if rng.random() < 0.5 else "", rng.choice(["", "", "", "1", "2", "3"]),
                rng.choice(["", "", "高血压", "糖尿病", "行动不便"]), rng.choice(["是", "否"]),
            ])  # fmt: skip
    return out


def to_csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def to_xlsx(rows: list[list[str]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


async def timed_run(content: bytes, *, dry_run: bool) -> tuple[float, dict]:
    from households import importer
    from households.tables import ImportJob
    from marketplace import crypto

    sealed = crypto.encrypt_bytes(content, importer.FILE_CONTEXT)
    job = ImportJob(created_by=None, filename="bench.csv", file_format="csv", content=sealed, dry_run=dry_run)
    await ImportJob.insert(job)
    started = time.perf_counter()
    await importer.run(job.id)
    elapsed = time.perf_counter() - started
    row = await ImportJob.select().where(ImportJob.id == job.id).first()
    return elapsed, row


async def measure(rows_wanted: int) -> None:
    from bench.common import figure
    from households.areas import seed_demo_areas
    from households.importer import read_rows
    from households.tables import Community, Household, Member
    from marketplace import db

    await db.open_pool()
    await db.migrate()
    await seed_demo_areas()
    codes = [row["code"] for row in await Community.select(Community.code)]
    rows = generate(rows_wanted, codes)
    content = to_csv(rows)
    households = len({r[0] for r in rows})
    print(f"   {len(rows):,} member rows, {households:,} households, {len(content) / 1e6:.1f} MB of CSV")
    for label, dry_run in (
        ("dry run (check only)", True),
        ("real run (one transaction)", False),
        ("same file again", False),
    ):
        elapsed, job = await timed_run(content, dry_run=dry_run)
        outcome = (
            f"created={job['created_count']} updated={job['updated_count']} "
            f"unchanged={job['unchanged_count']} errors={job['error_count']} state={job['state']}"
        )
        figure(f"{label}: seconds", elapsed, "s")
        figure(f"{label}: rows per second", len(rows) / elapsed, f"rows/s  ({outcome})")
    figure("households / members in the database", f"{await Household.count():,} / {await Member.count():,}")
    xlsx = to_xlsx(rows)
    started = time.perf_counter()
    read = read_rows("xlsx", xlsx)
    figure(
        f"reading {len(read) - 1:,} rows from XLSX ({len(xlsx) / 1e6:.1f} MB, python-calamine)",
        time.perf_counter() - started,
        "s",
    )
    await db.close_pool()


def main() -> None:
    from bench.common import measure_in_child

    measure_in_child("bench.import_households", str(ROWS))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        asyncio.run(measure(int(sys.argv[2])))
    else:
        main()
