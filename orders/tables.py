"""Tables of `orders`: Booking, the order state machine, routing and offers, tracking, settlement."""
