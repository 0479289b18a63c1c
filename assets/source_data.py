"""Source stage: raw tables as the adapter read them, then validated and cleaned canonical tables."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from coursepilot import ingest
from coursepilot.schema import TABLES
from resources import DatasetResource, ProjectHomeResource, WarehouseResource

from .metadata import markdown_table, table_metadata

GROUP = "source_data"
CLEANED = {table: AssetKey(table) for table in TABLES}
"""The cleaned tables' keys, for the stages that read them (a mistyped table is a KeyError, not an asset)."""


@multi_asset(
    specs=[
        AssetSpec(
            ingest.raw_name(t),
            group_name=GROUP,
            kinds={"duckdb"},
            description=f"The source's {t}, mapped to canonical column names, with _file/_row provenance.",
        )
        for t in TABLES
    ],
    can_subset=False,
)
def raw_tables(
    context: AssetExecutionContext,
    dataset: DatasetResource,
    warehouse: WarehouseResource,
    home: ProjectHomeResource,
):
    """Read the configured source through its adapter and store what it read, unvalidated."""
    context.log.info(f"reading {dataset.describe()}")
    source = dataset.load(home.home)
    with warehouse.get_connection() as con:
        info = ingest.write_raw(con, source)
        for table in TABLES:
            name = ingest.raw_name(table)
            yield MaterializeResult(
                asset_key=name,
                metadata={
                    **table_metadata(con, name),
                    "source_format": info["format"],
                    "source_fingerprint": info["fingerprint"],
                    "source_files": MetadataValue.md("\n".join(f"- `{f}`" for f in info["files"])),
                    "ground_truth_tables": ", ".join(source.truth) or "none",
                    "written": (
                        f"the source grew: rows appended to the {info['appended_to'][name][0]:,} stored"
                        if name in info["appended_to"]
                        else "replaced whole"
                    ),
                },
            )


class CleanSettings(Config):
    incremental: bool = True  # clean only the raw rows appended rows touch, when the source only grew


@multi_asset(
    specs=[
        AssetSpec(
            t,
            group_name=GROUP,
            kinds={"duckdb"},
            deps=[ingest.raw_name(t) for t in TABLES],
            description=f"Validated canonical {t} (see coursepilot.schema); written only when every table "
            "passes (rows a grown source touched are upserted, the rest stand).",
        )
        for t in TABLES
    ],
    can_subset=False,
)
def cleaned_tables(
    context: AssetExecutionContext,
    config: CleanSettings,
    dataset: DatasetResource,
    warehouse: WarehouseResource,
):
    """Validate the raw tables and replace learners, courses and interactions in one transaction."""
    with warehouse.get_connection() as con:
        report = ingest.clean(con, dataset.policy, config.incremental)
        repairs = pd.DataFrame(
            [vars(r) for r in report.repairs], columns=["table", "rule", "count", "detail"]
        )
        for repair in report.repairs:
            context.log.warning(
                f"{repair.table}: {repair.count} rows repaired ({repair.rule}: {repair.detail})"
            )
        for table in TABLES:
            yield MaterializeResult(
                asset_key=table,
                metadata={
                    **table_metadata(con, table),
                    "cleaned": (
                        "the raw rows that appended rows touch (the source grew)"
                        if report.grown
                        else "every row"
                    ),
                    "rows_read": report.rows_in[table],
                    "rows_dropped": report.rows_in[table] - report.rows_out[table],
                    "repairs": markdown_table(repairs[repairs["table"] == table]),
                },
            )
