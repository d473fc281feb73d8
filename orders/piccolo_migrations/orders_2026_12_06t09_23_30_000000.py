from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-06T09:23:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "Orders: an order's source key is unique (an index: SQLite cannot add a UNIQUE column)"


class RawTable(Table):
    pass


async def unique_source_key():
    await RawTable.raw("CREATE UNIQUE INDEX IF NOT EXISTS od_order_source_key ON od_order (source_key)")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="orders", description=DESCRIPTION)
    manager.add_raw(unique_source_key)
    return manager
