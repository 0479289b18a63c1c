"""One asset materialized alone: its upstream tables are hand-made frames written to a tmp project home, not
the upstream graph run first."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from dagster import DagsterInstance, materialize

from assets.courses import course_labels
from assets.peers import learner_state
from coursepilot.home import ProjectHome
from coursepilot.ingest import clean, write_raw
from coursepilot.peers.state import StateWeights
from coursepilot.schema import DIFFICULTY_LEVELS
from coursepilot.sources import SourceData
from coursepilot.sources.base import with_provenance
from coursepilot.stored import LEARNER_STATE
from coursepilot.warehouse import connect, replace_tables, vector_column
from resources import ProjectHomeResource, TrackingResource, warehouse_resource

COURSES = pd.DataFrame(
    {
        "course_id": [f"C{i:02d}" for i in range(30)],
        "title": [f"Course {i}" for i in range(30)],
        "difficulty": [DIFFICULTY_LEVELS[i % 3] for i in range(30)],  # C00 beginner, C01 intermediate, ...
        "duration_min": 60.0,
    }
)
INTERACTIONS = pd.DataFrame(
    [
        ("L1", "C00", 50.0, 5.0, "2024-03-04 10:00"),  # week 0
        ("L1", "C02", 100.0, 3.0, "2024-03-05 10:00"),  # week 0
        ("L1", "C01", 100.0, 1.0, "2024-03-12 10:00"),  # week 1
        ("L2", "C03", 100.0, 5.0, "2024-03-06 10:00"),  # week 0
        ("L2", "C04", 40.0, 2.0, "2024-03-13 10:00"),  # held out for test below
    ],
    columns=["learner_id", "course_id", "watch_pct", "rating", "ts"],
).astype({"ts": "datetime64[ns]"})
TEST_ROWS = {("L2", "C04")}


@pytest.fixture
def home(tmp_path) -> ProjectHome:
    """A project home whose warehouse holds the cleaned source tables, as ``cleaned_tables`` leaves them."""
    home = ProjectHome.resolve(tmp_path / "home")
    source = SourceData(
        "generic",
        with_provenance(pd.DataFrame({"learner_id": ["L1", "L2"]}), "learners.csv"),
        with_provenance(COURSES, "courses.csv"),
        with_provenance(INTERACTIONS, "events.csv"),
        rating_scale=(1.0, 5.0),
        files=[],
    )
    with connect(home.warehouse) as con:
        write_raw(con, source)
        clean(con)
    return home


def resources(home: ProjectHome) -> dict:
    project_home = ProjectHomeResource(root=str(home.root))
    return {
        "warehouse": warehouse_resource(home),
        "home": project_home,
        "tracking": TrackingResource(home=project_home),
    }


def materialized(result) -> tuple[str, dict]:
    """The one asset the run materialized (nothing upstream ran) and its metadata values."""
    [event] = result.get_asset_materialization_events()
    materialization = event.step_materialization_data.materialization
    return materialization.asset_key.to_user_string(), {
        k: v.value for k, v in materialization.metadata.items()
    }


def test_course_labels_from_hand_made_embeddings(home):
    # accessible (beginner) courses point one way, intensive ones the other: the classifier must split them
    intensive = COURSES["difficulty"].isin(["intermediate", "advanced"]).to_numpy()
    vectors = np.where(intensive[:, None], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0])
    vectors = vectors + 0.05 * np.random.default_rng(0).standard_normal(vectors.shape)
    with connect(home.warehouse) as con:
        replace_tables(
            con,
            {
                "course_embeddings": pa.table(
                    {
                        "course_id": COURSES["course_id"],
                        "embedding": vector_column(vectors.astype(np.float32)),
                    }
                )
            },
        )

    used = resources(home)
    result = materialize([course_labels], resources=used, instance=DagsterInstance.ephemeral())

    assert result.success
    with connect(home.warehouse, read_only=True) as con:
        labels = con.execute("SELECT * FROM course_labels ORDER BY course_id").df()
    assert list(labels.columns) == [
        "course_id",
        "difficulty",
        "difficulty_source",
        "intensive",
        "p_intensive",
    ]
    assert labels["course_id"].tolist() == COURSES["course_id"].tolist()
    assert labels["difficulty"].tolist() == COURSES["difficulty"].tolist()
    assert (labels["difficulty_source"] == "source").all()
    assert labels["intensive"].tolist() == intensive.tolist()
    assert labels["p_intensive"].between(0, 1).all()
    name, meta = materialized(result)
    assert (
        name == "course_labels" and meta["dagster/row_count"] == 30 and meta["difficulty_from_source"] == 30
    )
    assert meta["difficulty_method"] == "source" and meta["intensive_share"] == round(20 / 30, 4)
    run = used["tracking"].tracker().mlflow.get_run(meta["mlflow_run"])
    assert run.data.metrics["cv_accuracy"] == 1.0 and run.data.tags["source_format"] == "generic"


def test_learner_state_from_hand_made_split_and_labels(home):
    with connect(home.warehouse) as con:
        replace_tables(
            con,
            {
                "split": INTERACTIONS.assign(
                    split=[
                        "test" if row in TEST_ROWS else "train"
                        for row in zip(INTERACTIONS["learner_id"], INTERACTIONS["course_id"])
                    ]
                ),
                "course_labels": COURSES[["course_id", "difficulty"]],
            },
        )

    used = resources(home)
    result = materialize(
        [learner_state],
        resources=used,
        instance=DagsterInstance.ephemeral(),
        run_config={"ops": {"learner_state": {"config": {"theta": 0.5}}}},
    )

    assert result.success
    with connect(home.warehouse, read_only=True) as con:
        state = con.execute("SELECT * FROM learner_state ORDER BY learner_id, week").df()
    assert list(zip(state["learner_id"], state["week"])) == [("L1", 0), ("L1", 1), ("L2", 0)]
    # eq. 3: levels 1-3 weighted by the share watched, cumulative over the windows; L2's test course left out
    assert state["D"].tolist() == pytest.approx([(1 * 0.5 + 3 * 1.0) / 2, (1 * 0.5 + 3 + 2) / 3, 1.0])
    assert state["W"].tolist() == pytest.approx([0.75, 1.0, 1.0])
    assert state["R"].tolist() == pytest.approx([(1.0 + 0.5) / 2, 0.0, 1.0])  # ratings scaled from 1-5
    name, meta = materialized(result)
    assert (name, meta["dagster/row_count"], meta["windows"], meta["learners"]) == ("learner_state", 3, 2, 2)
    assert meta["signals"] == "W, R, E"
    # the weights the run used are kept in the model store for difficulty_steering
    assert used["home"].models.load(LEARNER_STATE) == StateWeights(theta=0.5)
    assert (meta["recomputed_learners"], meta["kept_learners"]) == (2, 0)

    # L2 rates their training course again (in the split, which carries the rows the stages read): the next
    # run (same weights) recomputes L2 alone and states it
    with connect(home.warehouse) as con:
        con.execute("UPDATE split SET rating = 1 WHERE learner_id = 'L2'")
    same = {"ops": {"learner_state": {"config": {"theta": 0.5}}}}
    again = materialize(
        [learner_state], resources=used, instance=DagsterInstance.ephemeral(), run_config=same
    )
    _, meta = materialized(again)
    assert (meta["recomputed_learners"], meta["kept_learners"], meta["removed_learners"]) == (1, 1, 0)
    # other weights recompute everyone
    other = materialize([learner_state], resources=used, instance=DagsterInstance.ephemeral())
    assert materialized(other)[1]["recomputed_learners"] == 2
    with connect(home.warehouse, read_only=True) as con:
        assert con.execute("SELECT R FROM learner_state WHERE learner_id = 'L2'").fetchone()[0] == 0.0
