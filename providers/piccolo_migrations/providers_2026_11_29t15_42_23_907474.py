"""Composite indexes of the candidate query (providers.candidates).

Piccolo declares single-column indexes only; these two are written out and work on SQLite
and PostgreSQL alike.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-29T15:42:23:907474"
VERSION = "1.38.0"
DESCRIPTION = "candidate query indexes"


class ServiceArea(Table, tablename="pv_service_area", schema=None):
    pass


async def create_indexes():
    await ServiceArea.raw(
        "CREATE INDEX IF NOT EXISTS pv_service_area_community_category "
        "ON pv_service_area (community, category, offering)"
    )
    await ServiceArea.raw(
        "CREATE INDEX IF NOT EXISTS pv_opening_hours_offering_weekday "
        "ON pv_opening_hours (offering, weekday, opens_at)"
    )


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="providers", description=DESCRIPTION)
    manager.add_raw(create_indexes)
    return manager
