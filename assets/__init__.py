"""Dagster software-defined assets, one module per stage; the logic lives in ``coursepilot``."""

from pipelines.threads import EXCLUSIVE_TAG

COMPARISON = {"role": "comparison"}
"""Tag of the assets that exist to measure and compare: rebuilt by the full job (weekly), not the nightly."""

ENCODES = {EXCLUSIVE_TAG: "encoder"}
"""Op tag of the steps that encode texts at length: the ``threads`` executor runs one of them at a time, as
the encoder takes one encoding at a time (``coursepilot.embeddings.ENCODING``)."""
