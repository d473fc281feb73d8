"""Erasure leaves no personal value anywhere: every table of every app is read back after it."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, timedelta
from typing import Any

from piccolo.conf.apps import Finder

from households import monitoring, services
from households.tables import Household, ImportJob, ImportRow, Member, Signal
from marketplace import accounts, clock, crypto
from marketplace.tables import Category, User
from notifications.tables import SandboxSms
from orders.tables import ConsentCode, IdempotentRequest, Order, OrderEvent
from tests.conftest import run_jobs
from tests.households.conftest import member_data

ADDRESS = "仙林街道文苑路九号三单元"
HOUSEHOLD_PHONE = "13911112222"
HEAD_PHONE = "13911112223"
PROXY_PHONE = "13800001111"
HEAD = member_data(
    name="欧阳桂英", born=date(1941, 3, 15), seq=2, phone=HEAD_PHONE, health="高血压二级", can_use_phone=True
)
CHILD = member_data(name="欧阳小明", born=date(2012, 6, 1), seq=3, relation="grandchild")


def _texts(cell: Any) -> list[str]:
    """A cell as text, and as JSON decoded (escaped non-ASCII written out) when it is JSON."""
    if isinstance(cell, bytes | bytearray | memoryview):
        return [bytes(cell).decode("utf-8", "replace")]
    text = str(cell)
    try:
        return [text, json.dumps(json.loads(text), ensure_ascii=False)]
    except ValueError:
        return [text]


async def leaks(values: list[str]) -> list[str]:
    """``table.column: value`` for every cell of every table that still holds a personal value."""
    found = []
    for table in Finder().get_table_classes():
        name = table._meta.tablename
        for row in await table.raw(f'SELECT * FROM "{name}"'):  # noqa: S608 - names from the Table classes
            for column, cell in row.items():
                for text in _texts(cell):
                    found += [f"{name}.{column}: {v}" for v in values if v in text]
    return sorted(set(found))


async def test_erasure_leaves_no_personal_value_in_any_table(
    client, worker, community, make_household, steward
):
    # Given a household whose data went everywhere: history, consent, an override, an ID read,
    # an activated resident account and a family proxy, a signal with a warning and a visit,
    # an order with notes, notifications and texts
    household_id = await make_household(
        community, members=[HEAD, CHILD], address=ADDRESS, phone=HOUSEHOLD_PHONE
    )
    _, user = await steward(community)
    await Household.update({Household.steward: user["id"]}).where(Household.id == household_id)
    p = await accounts.principal_for_user(user["id"])
    assert p is not None
    members = await Member.select().where(Member.household == household_id).order_by(Member.id)
    head_id = members[0]["id"]
    await services.add_consent(
        p,
        household_id,
        {"given_by": "欧阳桂英", "scope": "登记欧阳桂英的信息", "method": "paper", "given_on": "2024-05-01"},
    )
    until = (clock.local_now().date() + timedelta(days=30)).isoformat()
    await services.override_level(
        p, household_id, level=1, reason=f"欧阳桂英住院, 电话 {HOUSEHOLD_PHONE}", until=until
    )
    await services.reveal_id_number(p, household_id, head_id, reason="核对欧阳桂英的身份")
    await services.link_proxy(p, household_id, phone=PROXY_PHONE, name="欧阳大伟")

    assert (await client.post_form("/activate", {"phone": HEAD_PHONE})).status_code in (200, 302)
    await run_jobs(worker)
    sms = await SandboxSms.select(SandboxSms.text).where(SandboxSms.phone == HEAD_PHONE).first()
    code = re.search(r"(\d{6})", sms["text"]).group(1)
    activated = await client.post_form(
        "/activate/code",
        {
            "phone": HEAD_PHONE,
            "code": code,
            "password": "a-new-password-1",
            "password_again": "a-new-password-1",
        },
    )
    assert activated.status_code in (200, 302, 303)

    _, warning_id = await monitoring.report_signal(
        p,
        {
            "kind": "accident",
            "occurred_on": clock.local_now().date().isoformat(),
            "id_number": HEAD["id_number"],
            "person_name": "欧阳桂英",
            "note": f"欧阳桂英在{ADDRESS}摔倒",
        },
    )
    assert warning_id is not None
    await monitoring.record_visit(
        p,
        warning_id,
        {
            "visited_on": clock.local_now().date().isoformat(),
            "met": "欧阳桂英",
            "findings": "欧阳桂英行动不便",
        },
    )
    category = await Category.select(Category.id).first()
    if category is None:
        category = {
            "id": (await Category.insert(Category(code="errands", name_zh="跑腿", name_en="Errands")))[0][
                "id"
            ]
        }
    now = clock.now()
    order = Order(
        number="CS-E0000001",
        household=household_id,
        community=community,
        level=1,
        category=category["id"],
        window_start=now,
        window_end=now + timedelta(hours=2),
        notes=f"送到{ADDRESS}, 打 {HEAD_PHONE}",
        consent_note="欧阳桂英电话同意",
    )
    await order.save()
    await OrderEvent.insert(
        OrderEvent(order=order.id, kind="note", note="欧阳桂英不在家", detail={"who": "欧阳桂英"})
    )
    await ConsentCode.insert(
        ConsentCode(
            household=household_id,
            steward=user["id"],
            phone=HOUSEHOLD_PHONE,
            code_hash=uuid.uuid4().hex,
            expires_at=now + timedelta(minutes=10),
        )
    )
    # A row of an earlier import that carried the household
    job = ImportJob(filename="户籍.csv", file_format="csv", dry_run=False, state="done")
    await ImportJob.insert(job)
    code = (await Household.select(Household.code).where(Household.id == household_id).first())["code"]
    await ImportRow.insert(ImportRow(job=job.id, row_number=2, household_code=code, action="create"))
    # Answers kept for API writes sent with an Idempotency-Key, the steward's and the resident's
    resident = await User.select(User.id).where(User.phone == HEAD_PHONE).first()
    for caller in (user["id"], resident["id"]):
        await IdempotentRequest.insert(
            IdempotentRequest(
                key=f"user:{caller}:k-1",
                body_hash="0" * 64,
                state="done",
                status_code=201,
                response=json.dumps({"address": ADDRESS, "phone": HOUSEHOLD_PHONE}, ensure_ascii=False),
            )
        )
    await run_jobs(worker)

    values = [
        "欧阳桂英",
        "欧阳小明",
        "欧阳大伟",
        HEAD["id_number"],
        CHILD["id_number"],
        HEAD_PHONE,
        HOUSEHOLD_PHONE,
        PROXY_PHONE,
        ADDRESS,
        "高血压二级",
        "1941-03-15",
        "2012-06-01",
    ]
    values += [m["id_cipher"] for m in members] + [members[0]["health_cipher"]]
    assert crypto.decrypt(members[0]["id_cipher"], services.ID_CONTEXT) == HEAD["id_number"]
    before = await leaks(values)
    # The scan sees the data where the scenario put it (else it proves nothing)
    for table in (
        "hh_member",
        "hh_household",
        "hh_signal",
        "hh_verification",
        "cm_user",
        "cm_audit_event",
        "od_order",
        "od_order_event",
        "od_consent_code",
        "od_idempotent_request",
        "nt_sandbox_sms",
        "nt_notification",
        "nt_delivery",
        "hh_activation",
        "hh_consent",
        "hh_household_event",
    ):
        assert any(line.startswith(f"{table}.") for line in before), table

    # When the steward erases the household
    pseudonym = await services.erase_household(
        p, household_id, reason="欧阳桂英本人申请删除", confirm_code=code
    )
    await run_jobs(worker)

    # Then no table of any app holds any of the values; the history stays under the pseudonym
    assert await leaks(values) == []
    household = await Household.select().where(Household.id == household_id).first()
    assert household["pseudonym"] == pseudonym and household["level"] is not None
    # The household code (the civil-affairs database's key) is gone from import rows and signals
    assert [r["household_code"] for r in await ImportRow.select()] == [f"erased-{pseudonym}"]
    assert {r["household_code"] for r in await Signal.select()} <= {"", f"erased-{pseudonym}"}
    assert (await Order.select(Order.notes).first())["notes"] == "送到***, 打 ***"
