"""Deterministic orchestration: workflows only (no I/O, no clock reads, nothing nondeterministic)."""
