"""Dagster software-defined assets, one module per stage; the logic lives in ``coursepilot``."""
