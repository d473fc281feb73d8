"""Tables of `providers`: Organizations, volunteers, offerings, service areas, capacity."""
