"""Course text (what the embedders read) and its TF-IDF representation, the "without GenAI" baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from .embeddings import preprocess as preprocess_text

TEXT_FIELDS = (("description", ""), ("skills", "Skills: "), ("software", "Software: "), ("theme", "Theme: "))


def load_courses(con) -> pd.DataFrame:
    """The cleaned ``courses`` table in course id order: the rows the course stage embeds, vectorises and
    labels."""
    return con.execute("SELECT * FROM courses ORDER BY course_id").df()


def course_texts(courses: pd.DataFrame, preprocess: bool = False) -> list[str]:
    """Title, description, skills, software and theme (each where present), one text per course."""
    parts = [courses["title"].fillna("").astype(str)]
    for column, label in TEXT_FIELDS:
        if column in courses:
            values = courses[column].astype("string")
            parts.append(
                values.map(
                    lambda v, p=label: f"{p}{v}" if isinstance(v, str) and v.strip() else "",
                    na_action="ignore",
                ).fillna("")
            )
    joined = [". ".join(p for p in row if p) for row in zip(*parts)]
    joined = [text if text.strip() else "untitled course" for text in joined]
    return [preprocess_text(t) or t for t in joined] if preprocess else joined


def tfidf_vectors(texts: list[str], max_features: int = 20_000) -> tuple[TfidfVectorizer, sparse.csr_matrix]:
    """L2-normalised TF-IDF rows (unigrams and bigrams, English stop words removed).

    Texts without a single term (only stop words, one-letter words or punctuation) give a matrix of no columns
    and an unfitted vectorizer: the TF-IDF models then say there is no course text.
    """
    vectorizer = TfidfVectorizer(
        max_features=max_features, ngram_range=(1, 2), stop_words="english", sublinear_tf=True, min_df=1
    )
    try:
        matrix = vectorizer.fit_transform(texts).astype(np.float32)
    except ValueError as err:
        if "empty vocabulary" not in str(err):
            raise
        return vectorizer, sparse.csr_matrix((len(texts), 0), dtype=np.float32)
    return vectorizer, matrix.tocsr()
