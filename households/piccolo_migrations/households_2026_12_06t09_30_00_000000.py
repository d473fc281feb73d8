"""Indexes of the household list at a million households: its default order, and its search.

The list's first page is ordered by level, then id: an index on both gives it without
reading and sorting every household (both backends).  A search by fragment
(households.services._search) read every household and every member; on PostgreSQL,
trigram indexes (pg_trgm, a trusted extension the database owner may create) serve
``ILIKE '%fragment%'`` on codes, addresses and phone numbers and ``LIKE '%1234'`` on the masked
ID numbers; a GIN index over the characters of members' names serves names, which are two or
three Chinese characters and so have too few trigrams.  SQLite does without these: it is the
embedded mode of one district office.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-06T09:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "household list indexes"

ORDER_INDEX = "hh_household_level_id"

INDEXES = {
    "hh_household_code_trgm": "hh_household USING gin (code gin_trgm_ops)",
    "hh_household_address_trgm": "hh_household USING gin (address gin_trgm_ops)",
    "hh_household_phone_trgm": "hh_household USING gin (phone gin_trgm_ops)",
    "hh_member_phone_trgm": "hh_member USING gin (phone gin_trgm_ops)",
    "hh_member_id_masked_trgm": "hh_member USING gin (id_masked gin_trgm_ops)",
    "hh_member_name_chars": "hh_member USING gin (string_to_array(lower(name), NULL))",
}


class Member(Table, tablename="hh_member", schema=None):
    pass


def _postgres() -> bool:
    return Member._meta.db.engine_type == "postgres"


async def create_indexes():
    await Member.raw(f"CREATE INDEX IF NOT EXISTS {ORDER_INDEX} ON hh_household (level, id)")
    if not _postgres():
        return
    await Member.raw("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, definition in INDEXES.items():
        await Member.raw(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")


async def drop_indexes():
    await Member.raw(f"DROP INDEX IF EXISTS {ORDER_INDEX}")
    if not _postgres():
        return
    for name in INDEXES:
        await Member.raw(f"DROP INDEX IF EXISTS {name}")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="households", description=DESCRIPTION)
    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
