"""Indexes of the household list's search within a steward's communities, and of its filters.

Measured with ``bench scale`` at 200,000 households (figures in the commit message):

- ``(community, id)`` on households and ``(household, name)`` on members: a search by one
  character of a name within communities (``households.services._search`` with a scope) reads
  the ids of the scope's households and their members' names from these two indexes alone,
  instead of the thousands of members of the whole district who share a surname;
- ``(level, groups)`` on households: the count of a list filtered by level and need group is
  read from the index, not from every household of that level;
- ``right(id_masked, 4)`` on members (PostgreSQL): the search by the last four of an ID number
  is an equality there (``_id_ends_with``); the trigram index read the posting lists of digit
  trigrams shared by much of the district.  SQLite keeps ``LIKE '%1234'`` (the embedded mode
  of one district office, whose tables are small).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-06T13:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "household search by scope"

BOTH = {
    "hh_household_community_id": "hh_household (community, id)",
    "hh_household_level_groups": "hh_household (level, groups)",
    "hh_member_household_name": "hh_member (household, name)",
}
POSTGRES = {
    "hh_member_id_last_four": "hh_member (right(id_masked, 4))",
}


class Member(Table, tablename="hh_member", schema=None):
    pass


def _postgres() -> bool:
    return Member._meta.db.engine_type == "postgres"


def _indexes() -> dict[str, str]:
    return {**BOTH, **POSTGRES} if _postgres() else BOTH


async def create_indexes():
    for name, definition in _indexes().items():
        await Member.raw(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")


async def drop_indexes():
    for name in _indexes():
        await Member.raw(f"DROP INDEX IF EXISTS {name}")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="households", description=DESCRIPTION)
    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
