"""Piccolo's configuration: the engine from ``DATABASE_URL`` and the apps in migration order."""

from piccolo.conf.apps import AppRegistry

from marketplace.db import make_engine
from marketplace.settings import get_settings

DB = make_engine(get_settings())

# Order matters: each app's migrations may depend on those of the apps before it.
APP_REGISTRY = AppRegistry(
    apps=[
        "marketplace.piccolo_app",
        "notifications.piccolo_app",
        "households.piccolo_app",
        "providers.piccolo_app",
        "orders.piccolo_app",
        "reports.piccolo_app",
    ]
)
