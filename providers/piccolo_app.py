"""Piccolo app: Organizations, volunteers, offerings, service areas, capacity."""

from pathlib import Path

from piccolo.conf.apps import AppConfig, table_finder

APP_CONFIG = AppConfig(
    app_name="providers",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=table_finder(modules=["providers.tables"], exclude_imported=True),
    migration_dependencies=["marketplace.piccolo_app", "households.piccolo_app"],
    commands=[],
)
