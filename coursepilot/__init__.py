"""Coursepilot: Dagster-free domain logic for course and peer recommendation."""

__version__ = "0.1.0"
