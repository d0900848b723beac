"""Threshold procedures as pure state machines (no Qt, no I/O)."""
