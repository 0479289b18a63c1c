"""The train / test / cold-start split every model and evaluation shares."""

import pandas as pd
from dagster import AssetExecutionContext, Config, MaterializeResult, asset

from coursepilot.splits import SplitConfig, split_counts, update_split
from resources import WarehouseResource

from .metadata import markdown_table
from .source_data import CLEANED


class SplitSettings(Config):
    """Mirrors :class:`coursepilot.splits.SplitConfig`, whose defaults it takes."""

    test_share: float = SplitConfig.test_share
    min_interactions: int = SplitConfig.min_interactions
    cold_learner_share: float = SplitConfig.cold_learner_share
    cold_course_share: float = SplitConfig.cold_course_share
    seed: int = SplitConfig.seed
    # split again only learners whose interactions changed since the last run (the same table as splitting
    # everyone: a learner's rows depend on their own interactions only)
    incremental: bool = True


@asset(
    group_name="split",
    kinds={"duckdb"},
    deps=[CLEANED["interactions"]],
    description="Per interaction: train, test (last share per learner by time), cold_learner or cold_course.",
)
def split(
    context: AssetExecutionContext, config: SplitSettings, warehouse: WarehouseResource
) -> MaterializeResult:
    with warehouse.get_connection() as con:
        settings = config.model_dump()
        incremental = settings.pop("incremental")
        changes = update_split(con, SplitConfig(**settings), incremental)
        counts = split_counts(con)
    table = pd.DataFrame({"split": list(counts), "interactions": list(counts.values())})
    return MaterializeResult(
        metadata={
            "dagster/row_count": sum(counts.values()),
            **changes.metadata(),
            "counts": markdown_table(table),
            **{f"{k}_interactions": v for k, v in counts.items()},
        }
    )
