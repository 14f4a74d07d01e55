"""Benchmarks that print the figures of DESIGN.md (never timed test assertions)."""
