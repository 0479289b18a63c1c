"""The small synthetic warehouse the recommender and serving tests share (built without Dagster)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from coursepilot.content import course_texts, tfidf_vectors
from coursepilot.embeddings import embed_texts
from coursepilot.ingest import clean, write_raw
from coursepilot.models.catalogue import build
from coursepilot.models.fusion import Fusion
from coursepilot.sources import load_source
from coursepilot.splits import SplitConfig, build_split
from coursepilot.synthetic import SyntheticSpec, write_dataset
from coursepilot.warehouse import replace_tables, vector_column

SCALE = (1.0, 5.0)
FUSION_PARAMS = {"ease": {"regularization": 100.0, "recency": 2.0}, "peer_group": {"clusters": 32}}
"""The settings of :func:`small_fusion`, as a serving bundle records them."""


def build_warehouse(folder: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse of 2,500 synthetic learners with the tables the models read."""
    con = duckdb.connect()
    write_raw(con, load_source("synthetic", write_dataset(SyntheticSpec(2500, 150, 50_000, seed=11), folder)))
    clean(con)
    build_split(con, SplitConfig(cold_course_share=0.05))
    courses = con.execute("SELECT * FROM courses ORDER BY course_id").df()
    texts = course_texts(courses)
    vectorizer, matrix = tfidf_vectors(texts)
    coo = matrix.tocoo()
    replace_tables(
        con,
        {
            "course_embeddings": pa.table(
                {"course_id": courses["course_id"].tolist(), "embedding": vector_column(embed_texts(texts))}
            ),
            "tfidf_course_vectors": pd.DataFrame(
                {
                    "course_id": courses["course_id"].to_numpy()[coo.row],
                    "term": vectorizer.get_feature_names_out()[coo.col],
                    "weight": coo.data,
                }
            ),
            "course_labels": courses[["course_id", "difficulty"]],
            "learner_labels": con.execute(
                "SELECT learner_id, CASE WHEN adaptive THEN 0.9 ELSE 0.1 END AS p_adaptive "
                "FROM truth_learners"
            ).df(),
        },
    )
    return con


def small_fusion() -> Fusion:
    """A fusion of EASE, TF-IDF content, peer groups and the level term with fixed weights."""
    return Fusion(
        {
            "ease": build("ease", {"recency": 2.0}),
            "content_tfidf": build("content_tfidf"),
            "peer_group": build("peer_group"),
            "level": build("level"),
        },
        {"ease": 1.0, "content_tfidf": 0.25, "peer_group": 0.1, "level": 0.1},
    )
