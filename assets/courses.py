"""Course stage: MiniLM embeddings, TF-IDF vectors, difficulty and intensive / accessible labels, similar
courses."""

import numpy as np
import pandas as pd
import pyarrow as pa
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from coursepilot.content import course_texts, load_courses, tfidf_vectors
from coursepilot.embeddings import EmbedStats, text_key
from coursepilot.labels import fill_difficulty, label_courses
from coursepilot.neighbours import EXACT_LIMIT, CourseIndex
from coursepilot.tracking import log_classifier
from coursepilot.warehouse import read_vectors, replace_tables, vector_column
from resources import EmbedderResource, TrackingResource, WarehouseResource

from . import ENCODES
from .lineage import run_tags
from .metadata import confusion_table, markdown_table
from .source_data import CLEANED

GROUP = "courses"
NO_TEXT = "no course text: no title or description holds a word TF-IDF can index, so the vectors are empty"


@asset(
    group_name=GROUP,
    op_tags=ENCODES,
    kinds={"duckdb", "pytorch"},
    deps=[CLEANED["courses"]],
    description="all-MiniLM-L6-v2 embedding (384-d, L2-normalised) of each course's title, description, "
    "skills, software and theme.",
)
def course_embeddings(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    embedder: EmbedderResource,
) -> MaterializeResult:
    with warehouse.get_connection() as con:
        courses = load_courses(con)
        texts = course_texts(courses, preprocess=embedder.preprocess)
        stats = EmbedStats()
        vectors = embedder.embed(texts, stats)
        replace_tables(
            con,
            {
                "course_embeddings": pa.table(
                    {
                        "course_id": courses["course_id"].tolist(),
                        "text_key": [text_key(embedder.model, t) for t in texts],
                        "embedding": vector_column(vectors),
                    }
                )
            },
        )
    context.log.info(f"encoded {stats.encoded} course texts, {stats.cached} from the cache")
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(courses),
            "dimension": int(vectors.shape[1]),
            "model": embedder.model,
            "encoded": stats.encoded,
            "cached": stats.cached,
            "truncated_over_256_tokens": stats.truncated,
            "sentences_per_second": round(stats.per_second, 1),
            "preprocessed": embedder.preprocess,
        }
    )


@asset(
    group_name=GROUP,
    kinds={"duckdb", "sklearn"},
    deps=[CLEANED["courses"]],
    description="TF-IDF (unigrams + bigrams) of the same course text: the 'without GenAI' baseline, stored "
    "as (course_id, term, weight).",
)
def tfidf_course_vectors(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with warehouse.get_connection() as con:
        courses = load_courses(con)
        vectorizer, matrix = tfidf_vectors(course_texts(courses))
        coo = matrix.tocoo()
        terms = vectorizer.get_feature_names_out() if matrix.shape[1] else np.array([], dtype=object)
        replace_tables(
            con,
            {
                "tfidf_course_vectors": pa.table(
                    {
                        "course_id": pa.array(courses["course_id"].to_numpy()[coo.row], pa.string()),
                        "term": pa.array(terms[coo.col], pa.string()),
                        "weight": pa.array(coo.data, pa.float32()),
                    }
                )
            },
        )
    metadata = {
        "dagster/row_count": int(matrix.nnz),
        "courses": matrix.shape[0],
        "vocabulary": matrix.shape[1],
        "mean_terms_per_course": round(matrix.nnz / max(matrix.shape[0], 1), 1),
    }
    if not matrix.shape[1]:
        metadata["fallback"] = NO_TEXT
        context.log.warning(NO_TEXT)
    return MaterializeResult(metadata=metadata)


class CourseLabelSettings(Config):
    cv_folds: int = 5
    seed: int = 0


@asset(
    group_name=GROUP,
    kinds={"duckdb", "sklearn", "mlflow"},
    deps=[course_embeddings],
    description="Difficulty (source, else derived from text) and cognitively intensive vs accessible by "
    "logistic regression on embeddings.",
)
def course_labels(
    context: AssetExecutionContext,
    config: CourseLabelSettings,
    warehouse: WarehouseResource,
    tracking: TrackingResource,
) -> MaterializeResult:
    with warehouse.get_connection() as con:
        courses = load_courses(con)
        ids, vectors = read_vectors(con, "course_embeddings", "course_id", "embedding")
        known = courses["difficulty"] if "difficulty" in courses else pd.Series([None] * len(courses))
        difficulty, source, method = fill_difficulty(
            vectors, course_texts(courses), known.reset_index(drop=True), seed=config.seed
        )
        result = label_courses(ids, vectors, difficulty, source, config.cv_folds, config.seed)
        replace_tables(con, {"course_labels": result.labels})
        tags = run_tags(context, con)
    context.log.info(
        f"difficulty: {int((source == 'source').sum())} from the source, {int((source == 'derived').sum())} "
        f"derived ({method})"
    )
    metadata = {
        "dagster/row_count": len(result.labels),
        "difficulty_method": method,
        "difficulty_from_source": int((source == "source").sum()),
        "difficulty_derived": int((source == "derived").sum()),
        "intensive_share": round(float(result.labels["intensive"].mean()), 4),
    }
    if result.model is None:
        context.log.warning(result.fallback)
        return MaterializeResult(metadata={**metadata, "fallback": result.fallback})
    run_id = log_classifier(
        tracking.tracker(),
        "course_labels_logreg",
        result.model,
        {**config.model_dump(), "difficulty_method": method, "labelled_courses": result.labelled},
        {"cv": result.cv["logreg"], "cv_majority": result.cv["majority"]},
        tags,
    )
    scores = pd.DataFrame(
        [{"model": n, "accuracy": round(s.accuracy, 4), "f1": round(s.f1, 4)} for n, s in result.cv.items()]
    )
    return MaterializeResult(
        metadata={
            **metadata,
            "cv_scores": markdown_table(scores),
            "confusion_matrix": confusion_table(result.cv["logreg"].confusion, "accessible", "intensive"),
            "mlflow_run": MetadataValue.text(run_id),
        }
    )


@asset(
    group_name=GROUP,
    kinds={"duckdb"},
    deps=[course_embeddings],
    description="'Courses like this one': the 10 nearest courses by embedding cosine (exact or usearch HNSW "
    "by catalogue size).",
)
def similar_courses(warehouse: WarehouseResource) -> MaterializeResult:
    with warehouse.get_connection() as con:
        ids, vectors = read_vectors(con, "course_embeddings", "course_id", "embedding")
        index = CourseIndex(ids, vectors)
        top, sims = index.search(vectors, 11)
        rows = [
            (ids[i], ids[t], rank, float(s))
            for i in range(len(ids))
            for rank, (t, s) in enumerate(((t, s) for t, s in zip(top[i], sims[i]) if t != i), start=1)
            if rank <= 10
        ]
        frame = pd.DataFrame(rows, columns=["course_id", "similar_course_id", "rank", "similarity"])
        replace_tables(con, {"similar_courses": frame})
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(frame),
            "index": index.kind,
            "exact_limit": EXACT_LIMIT,
            "mean_top1_similarity": round(float(frame.query("rank == 1")["similarity"].mean()), 4)
            if len(frame)
            else 0.0,
            "example": markdown_table(frame.head(10)),
        }
    )
