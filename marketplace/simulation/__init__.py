"""``cloudmarket simulate``: a realistic district generated for a seed (and, later, a day of orders).

``district`` makes the people, places and providers as plain values (no database), batch by
batch and the same for the same seed; ``generate`` writes them with bulk inserts and
returns a summary.
"""
