"""Agreement of text-derived course difficulty with the real labels of edX and MARS.

Methods (as coursepilot.labels.fill_difficulty uses them): logistic regression on MiniLM embeddings
trained on labelled courses (5-fold cross-validated predictions), and lexical level cues (no training).
Usage: python benchmarks/bench_difficulty.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from common import labelled_catalogues, print_table
from coursepilot.content import course_texts
from coursepilot.embeddings import embed_texts
from coursepilot.labels import difficulty_from_cues
from coursepilot.sources import load_source


def main() -> None:
    rows = []
    for name, (fmt, path) in labelled_catalogues().items():
        courses = load_source(fmt, path).courses
        courses = (
            courses.assign(difficulty=courses["difficulty"].str.lower())
            .dropna(subset=["difficulty"])
            .drop_duplicates("course_id")
        )
        texts, truth = course_texts(courses), courses["difficulty"].to_numpy()
        vectors = embed_texts(texts)
        folds = StratifiedKFold(5, shuffle=True, random_state=0)
        predictions = {
            "majority class": np.full(len(truth), pd.Series(truth).mode()[0]),
            "logistic regression on embeddings (CV)": cross_val_predict(
                LogisticRegression(C=10.0, max_iter=3000), vectors, truth, cv=folds
            ),
            "lexical level cues": difficulty_from_cues(texts),
        }
        for method, predicted in predictions.items():
            rows.append(
                [
                    name,
                    len(truth),
                    method,
                    accuracy_score(truth, predicted),
                    f1_score(truth, predicted, average="macro"),
                    cohen_kappa_score(truth, predicted),
                ]
            )
    print_table(
        "Course difficulty from text vs real labels",
        ["catalogue", "courses", "method", "accuracy", "macro F1", "Cohen's kappa"],
        rows,
    )


if __name__ == "__main__":
    main()
