"""Piccolo app: Booking, the order state machine, routing and offers, tracking, settlement."""

from pathlib import Path

from piccolo.conf.apps import AppConfig, table_finder

APP_CONFIG = AppConfig(
    app_name="orders",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=table_finder(modules=["orders.tables"], exclude_imported=True),
    migration_dependencies=[
        "marketplace.piccolo_app",
        "households.piccolo_app",
        "providers.piccolo_app",
        "notifications.piccolo_app",
    ],
    commands=[],
)
