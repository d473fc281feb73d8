"""Households, members, need groups and levels, steward scopes, signals and warnings."""
