"""Benchmarks: measured, printed, never asserted (see README, Benchmarks)."""
