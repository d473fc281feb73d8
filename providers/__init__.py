"""Organizations, volunteers, offerings, service areas, capacity."""
