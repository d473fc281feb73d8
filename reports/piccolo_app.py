"""Piccolo app: Reports (monthly monitoring, quarterly evaluation) and their cache."""

from pathlib import Path

from piccolo.conf.apps import AppConfig, table_finder

APP_CONFIG = AppConfig(
    app_name="reports",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=table_finder(modules=["reports.tables"], exclude_imported=True),
    migration_dependencies=[
        "marketplace.piccolo_app",
        "households.piccolo_app",
        "providers.piccolo_app",
        "orders.piccolo_app",
    ],
    commands=[],
)
