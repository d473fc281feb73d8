"""Booking, the order state machine, routing and offers, tracking, settlement."""
