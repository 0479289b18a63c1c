"""Multi-factor learner profiles: job, software and theme embeddings plus engagement-weighted content."""

import pandas as pd
import pyarrow as pa
from dagster import Config, MaterializeResult, asset

from coursepilot import ingest
from coursepilot.changes import inputs_table, learner_changes
from coursepilot.embeddings import EmbedStats
from coursepilot.profiles import (
    PROFILE_ROWS,
    attribute_values,
    build_profiles,
    profile_context,
    profile_inputs_sql,
    profile_tables,
)
from coursepilot.read_cache import replace_keeping_rows
from coursepilot.warehouse import Merge, replace_tables, row_count, vector_column
from resources import EmbedderResource, WarehouseResource

from . import ENCODES
from .courses import course_embeddings
from .metadata import markdown_table
from .source_data import CLEANED
from .split import split

GROUP = "profiles"
PROFILES = PROFILE_ROWS.table


@asset(
    group_name=GROUP,
    op_tags=ENCODES,
    kinds={"duckdb", "pytorch"},
    deps=[CLEANED["learners"], CLEANED["courses"]],
    description="MiniLM embeddings of every distinct job, software and theme text (equations 15-17).",
)
def attribute_embeddings(
    warehouse: WarehouseResource,
    embedder: EmbedderResource,
) -> MaterializeResult:
    with warehouse.get_connection() as con:
        values = attribute_values(con)
        kinds = [k for k, vs in values.items() for _ in vs]
        texts = [v for vs in values.values() for v in vs]
        stats = EmbedStats()
        vectors = embedder.embed(texts, stats) if texts else None
        replace_tables(
            con,
            {
                "attribute_embeddings": pa.table(
                    {
                        "kind": pa.array(kinds, pa.string()),
                        "value": pa.array(texts, pa.string()),
                        "embedding": vector_column(vectors)
                        if vectors is not None
                        else pa.array([], pa.list_(pa.float32(), 384)),
                    }
                )
            },
        )
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(texts),
            **{f"distinct_{k}": len(v) for k, v in values.items()},
            "encoded": stats.encoded,
            "cached": stats.cached,
        }
    )


class ProfileSettings(Config):
    # rebuild only learners whose attributes, training rows or courses changed since the last run (the same
    # profiles as a full rebuild)
    incremental: bool = True


@asset(
    group_name=GROUP,
    kinds={"duckdb"},
    deps=[attribute_embeddings, course_embeddings, split],
    description="Per learner: content (E_desc) and theme (E_theme, as weights over the theme embeddings in "
    "learner_theme_basis) profiles from training courses, with job and software; E_u* = [desc, job, soft, "
    "theme].",
)
def learner_profiles(config: ProfileSettings, warehouse: WarehouseResource) -> MaterializeResult:
    with warehouse.get_connection() as con:
        scale = ingest.source_info(con)["rating_scale"]
        changes = learner_changes(
            con, PROFILES, profile_inputs_sql(con), profile_context(con, scale), config.incremental
        )
        learners, profiles = build_profiles(con, scale, None if changes.everyone else changes.changed)
        tables = {**profile_tables(learners, profiles), inputs_table(PROFILES): changes.fingerprints}
        # the peer stages map the rows written here instead of reading them back
        if changes.everyone:
            replace_keeping_rows(con, PROFILE_ROWS, tables)
        else:
            merge = Merge(tables.pop(PROFILES), changes.kept_ids())
            replace_keeping_rows(con, PROFILE_ROWS, tables, merged={PROFILES: merge})
        stored = row_count(con, PROFILES)
    known = profiles.known()
    return MaterializeResult(
        metadata={
            **changes.metadata(),
            "dagster/row_count": stored,
            "theme_basis_rows": len(profiles.parts["theme"].basis),
            "learners_with_part_of": "every learner" if changes.everyone else "the recomputed learners",
            "learners_with_part": markdown_table(
                pd.DataFrame({"part": list(known), "learners": list(known.values())})
            ),
        }
    )
