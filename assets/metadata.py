"""Metadata helpers shared by the asset modules: row counts, previews and tables as Markdown."""

from __future__ import annotations

import pandas as pd
from dagster import MetadataValue

from coursepilot import warehouse


def markdown_table(frame: pd.DataFrame) -> MetadataValue:
    return MetadataValue.md(frame.to_markdown(index=False) if len(frame) else "_(empty)_")


def table_metadata(con, table: str) -> dict:
    """Row count, columns, null rates and a preview of a warehouse table."""
    rates = warehouse.null_rates(con, table)
    return {
        "dagster/row_count": warehouse.row_count(con, table),
        "columns": ", ".join(warehouse.columns(con, table)),
        "null_rates": markdown_table(
            pd.DataFrame({"column": list(rates), "null_rate": [round(v, 4) for v in rates.values()]})
        ),
        "preview": markdown_table(warehouse.preview(con, table)),
    }


def confusion_table(matrix: list[list[int]], negative: str, positive: str) -> MetadataValue:
    """A 2x2 confusion matrix (rows: truth, columns: prediction) as Markdown."""
    frame = pd.DataFrame(
        matrix,
        index=[f"true {negative}", f"true {positive}"],
        columns=[f"predicted {negative}", f"predicted {positive}"],
    )
    return markdown_table(frame.reset_index(names=""))
