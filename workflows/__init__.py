"""Deterministic orchestration: workflows only (no I/O, clocks or randomness)."""
