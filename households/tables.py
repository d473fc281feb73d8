"""Tables of `households`: households, members, need groups and levels, steward scopes, warnings."""
