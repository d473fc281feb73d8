"""Reports: monthly monitoring and quarterly evaluation, the steward's dashboard."""
