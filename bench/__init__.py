"""Benchmarks: each module prints figures; none asserts a time. Run with `make bench`."""
