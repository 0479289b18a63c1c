"""Lineage tags every MLflow run carries: Dagster run id and the fingerprint of the source data."""

from dagster import AssetExecutionContext

from coursepilot import ingest


def run_tags(context: AssetExecutionContext, con) -> dict[str, str]:
    info = ingest.source_info(con)
    return {
        "dagster_run_id": context.run.run_id,
        "data_fingerprint": info["fingerprint"],
        "source_format": info["format"],
    }
