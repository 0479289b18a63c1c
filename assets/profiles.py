"""Multi-factor learner profiles: job, software and theme embeddings plus engagement-weighted content."""

import pandas as pd
import pyarrow as pa
from dagster import MaterializeResult, asset

from coursepilot import ingest
from coursepilot.embeddings import EmbedStats
from coursepilot.profiles import attribute_values, build_profiles, profile_tables
from coursepilot.warehouse import replace_tables, vector_column
from resources import EmbedderResource, WarehouseResource

from .courses import course_embeddings
from .metadata import markdown_table
from .source_data import CLEANED
from .split import split

GROUP = "profiles"


@asset(
    group_name=GROUP,
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


@asset(
    group_name=GROUP,
    kinds={"duckdb"},
    deps=[attribute_embeddings, course_embeddings, split],
    description="Per learner: content (E_desc) and theme (E_theme, as weights over the theme embeddings in "
    "learner_theme_basis) profiles from training courses, with job and software; E_u* = [desc, job, soft, "
    "theme].",
)
def learner_profiles(warehouse: WarehouseResource) -> MaterializeResult:
    with warehouse.get_connection() as con:
        learners, profiles = build_profiles(con, ingest.source_info(con)["rating_scale"])
        replace_tables(con, profile_tables(learners, profiles))
    known = profiles.known()
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(learners),
            "theme_basis_rows": len(profiles.parts["theme"].basis),
            "learners_with_part": markdown_table(
                pd.DataFrame({"part": list(known), "learners": list(known.values())})
            ),
        }
    )
