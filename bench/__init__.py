"""Benchmarks: scripts that print figures and ratios (see bench/README.md); nothing here asserts."""
