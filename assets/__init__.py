"""Dagster software-defined assets, one module per stage; the logic lives in ``coursepilot``."""

COMPARISON = {"role": "comparison"}
"""Tag of the assets that exist to measure and compare: rebuilt by the full job (weekly), not the nightly."""
