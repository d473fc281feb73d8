"""Piccolo app: Households, members, need groups and levels, steward scopes, signals and warnings."""

from pathlib import Path

from piccolo.conf.apps import AppConfig, table_finder

APP_CONFIG = AppConfig(
    app_name="households",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=table_finder(modules=["households.tables"], exclude_imported=True),
    migration_dependencies=["marketplace.piccolo_app", "notifications.piccolo_app"],
    commands=[],
)
