"""Seed the service categories and the first level policies every install needs.

The data is written out here, not imported, so that later changes to the code do not change
what this migration did.  Rows that exist already (by code, or by level and version) are left
alone, so running it on a database that has them changes nothing.
"""

import json
import uuid
from datetime import datetime, timezone

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import (
    JSON,
    UUID,
    Boolean,
    Integer,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from marketplace import clock

ID = "2026-11-29T15:38:40:034264"
VERSION = "1.38.0"
DESCRIPTION = "seed categories and level policies"


class Category(Table, tablename="mk_category", schema=None):
    id = Serial(primary_key=True)
    public_id = UUID()
    code = Varchar(length=40)
    name_zh = Varchar(length=50)
    name_en = Varchar(length=80)
    description_zh = Text()
    description_en = Text()
    icon = Varchar(length=60)
    routing = Varchar(length=10)
    unit = Varchar(length=10)
    credit_cost = Integer()
    sort_order = Integer()
    is_active = Boolean()
    created_at = Timestamptz()
    updated_at = Timestamptz()


class LevelPolicy(Table, tablename="mk_level_policy", schema=None):
    id = Serial(primary_key=True)
    level = Integer()
    version = Integer()
    key = Varchar(length=20)
    monthly_credits = Integer()
    cost_rules = JSON()
    accept_minutes = Integer()
    service_hours = Integer()
    offer_timeout_minutes = Integer()
    routing_priority = Integer()
    effective_from = Timestamptz()
    reason = Text()
    changed_by = Integer(null=True)
    created_at = Timestamptz()


# code, 中文名, English name, 说明, description, routing, unit, credits per unit
CATEGORIES = [
    ("errands", "跑腿代办", "Errands",
     "代缴水电燃气费、取送物品、代办证件和手续等跑腿事务。",
     "Paying utility bills, fetching and delivering things, handling paperwork.",
     "pool", "visit", 10),
    ("cleaning", "保洁", "Home cleaning",
     "居室清洁、厨房卫生间清洗、整理收纳，每次约两小时。",
     "Cleaning rooms, kitchen and bathroom, tidying up; about two hours a visit.",
     "direct", "visit", 30),
    ("medicine", "代购送药", "Medicine purchase and delivery",
     "按处方或清单到药店或医院代购药品，送到家中。",
     "Buying medicine from a pharmacy or hospital on a prescription or list, delivered home.",
     "pool", "visit", 10),
    ("meals", "助餐", "Meals",
     "在社区助餐点就餐，或由助餐点送餐上门。",
     "A meal at the community canteen, or delivered home by it.",
     "direct", "meal", 8),
    ("companionship", "陪伴探访", "Companionship visits",
     "上门陪伴聊天、读报、散步，留意老人身心状况。",
     "Visits to talk, read and walk together, keeping an eye on health and mood.",
     "pool", "hour", 10),
    ("hospital_escort", "陪诊", "Hospital escort",
     "陪同就医：挂号、候诊、缴费、取药和往返接送。",
     "Going along to the hospital: registration, waiting, paying, medicine, the trip there and back.",
     "direct", "visit", 40),
    ("haircut", "理发", "Haircut",
     "理发师上门理发，或在合作门店优先服务。",
     "A barber comes to the home, or serves first at a partner shop.",
     "direct", "visit", 10),
    ("home_repair", "维修", "Home repair",
     "水电、门窗、灶具和小家电等小修小补。",
     "Small repairs: plumbing, wiring, doors and windows, stoves and small appliances.",
     "direct", "visit", 20),
    ("bathing", "助浴", "Bathing help",
     "经过培训的助浴员上门协助洗浴，注意防滑和保暖。",
     "Trained helpers assist with bathing at home, with care against falls and cold.",
     "direct", "visit", 40),
]

# level, monthly credits, percent of the standard cost charged, minutes to accept,
# hours to service, offer timeout in minutes, routing priority (lower is served first)
POLICIES = [
    (1, 300, 50, 30, 24, 10, 1),
    (2, 200, 80, 120, 48, 30, 2),
    (3, 100, 100, 480, 72, 60, 3),
]


def category_uuid(code):
    return uuid.uuid5(uuid.NAMESPACE_URL, f"cloudmarket:category:{code}")


async def seed():
    now = clock.now()
    for order, (code, zh, en, desc_zh, desc_en, routing, unit, cost) in enumerate(CATEGORIES, start=1):
        await Category.insert(
            Category(
                public_id=category_uuid(code),
                code=code,
                name_zh=zh,
                name_en=en,
                description_zh=desc_zh,
                description_en=desc_en,
                icon=f"{code}.svg",
                routing=routing,
                unit=unit,
                credit_cost=cost,
                sort_order=order * 10,
                is_active=True,
                created_at=now,
                updated_at=now,
            )
        ).on_conflict(target=Category.code, action="DO NOTHING")
    since = datetime(2000, 1, 1, tzinfo=timezone.utc)
    for level, credits, percent, accept, service, timeout, priority in POLICIES:
        await LevelPolicy.insert(
            LevelPolicy(
                level=level,
                version=1,
                key=f"{level}:1",
                monthly_credits=credits,
                cost_rules=json.dumps({"percent": percent, "fixed": {}, "excluded": []}),
                accept_minutes=accept,
                service_hours=service,
                offer_timeout_minutes=timeout,
                routing_priority=priority,
                effective_from=since,
                reason="初始政策（系统预置，可由管理员调整）",
                changed_by=None,
                created_at=now,
            )
        ).on_conflict(target=LevelPolicy.key, action="DO NOTHING")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="marketplace", description=DESCRIPTION)
    manager.add_raw(seed)
    return manager
