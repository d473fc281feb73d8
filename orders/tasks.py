"""Actors of `orders`."""

import marketplace.broker  # noqa: F401 - the broker is set before any actor is declared
