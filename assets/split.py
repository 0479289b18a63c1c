"""The train / test / cold-start split every model and evaluation shares."""

import pandas as pd
from dagster import AssetExecutionContext, Config, MaterializeResult, asset

from coursepilot.splits import SplitConfig, update_split
from resources import WarehouseResource

from .metadata import markdown_table
from .source_data import CLEANED


class SplitSettings(Config):
    """Mirrors :class:`coursepilot.splits.SplitConfig`, whose defaults it takes, and says whether the split
    may merge the learners whose interactions changed (:func:`coursepilot.splits.update_split`)."""

    test_share: float = SplitConfig.test_share
    min_interactions: int = SplitConfig.min_interactions
    cold_learner_share: float = SplitConfig.cold_learner_share
    cold_course_share: float = SplitConfig.cold_course_share
    seed: int = SplitConfig.seed
    incremental: bool = True  # split again only the learners whose interactions changed (False: everyone)


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
        counts, changes = update_split(
            con, SplitConfig(**config.model_dump(exclude={"incremental"})), config.incremental
        )
    table = pd.DataFrame({"split": list(counts), "interactions": list(counts.values())})
    return MaterializeResult(
        metadata={
            "dagster/row_count": sum(counts.values()),
            "counts": markdown_table(table),
            **{f"{k}_interactions": v for k, v in counts.items()},
            **changes.metadata(),
        }
    )
