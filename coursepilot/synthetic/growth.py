"""A day of platform growth for a generated dataset: new courses and new interactions, appended in place.

Used to exercise and measure the nightly retrain on slowly growing data (tests, ``bench_pipeline.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def append_growth(folder: Path, share: float = 0.01, seed: int = 1) -> tuple[int, int]:
    """Append ``share`` new courses (new titles) and ``share`` new interactions, a week after the last and
    half of them with the new courses, to the Parquet files in ``folder``; return (new courses, new
    interactions)."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    courses, inter = (
        pd.read_parquet(folder / "courses.parquet"),
        pd.read_parquet(folder / "interactions.parquet"),
    )
    new = courses.sample(max(1, int(len(courses) * share)), random_state=seed).reset_index(drop=True)
    new["course_id"] = [f"NEW{seed}-{i}" for i in range(len(new))]
    new["title"] = new["title"] + " (new edition " + new.index.astype(str) + ")"
    added = inter.sample(max(1, int(len(inter) * share)), random_state=seed).reset_index(drop=True)
    added["course_id"] = np.where(
        rng.random(len(added)) < 0.5,
        rng.choice(new["course_id"], len(added)),
        rng.choice(courses["course_id"], len(added)),
    )
    if "ts" in added:
        added["ts"] = inter["ts"].max() + pd.Timedelta(days=7)
    added = added[
        ~added.set_index(["learner_id", "course_id"]).index.isin(
            inter.set_index(["learner_id", "course_id"]).index
        )
    ]
    added = added.drop_duplicates(["learner_id", "course_id"])
    pd.concat([courses, new], ignore_index=True).to_parquet(folder / "courses.parquet")
    pd.concat([inter, added], ignore_index=True).to_parquet(folder / "interactions.parquet")
    return len(new), len(added)
