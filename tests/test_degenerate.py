"""Degenerate but valid data runs end to end or stops cleanly, never with a traceback or a half-written
warehouse.

Each dataset of ``CORPUS`` is a few small files (the ``generic`` format unless the case needs another) run
through ``coursepilot evaluate`` once per session. It either completes (report.md / report.json written, and
every stage that could not learn says why) or stops before writing the cleaned tables, with one line naming
the reason.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from dagster import AssetKey, DagsterInstance

from coursepilot.cleaning import Policy
from coursepilot.ingest import clean, write_raw
from coursepilot.schema import ValidationError
from coursepilot.sources import load_source

from .test_cli import cli

TOPICS = (
    "python",
    "databases",
    "machine learning",
    "cloud computing",
    "statistics",
    "web development",
    "containers",
)
LEVELS = ("an introduction to", "the basics of", "applied", "advanced", "in-depth")
CLEANED = ("learners", "courses", "interactions")


def _catalogue(courses: int) -> pd.DataFrame:
    return pd.DataFrame(
        [
            (
                f"C{i:03d}",
                f"{LEVELS[i % len(LEVELS)]} {TOPICS[i % len(TOPICS)]}".capitalize(),
                f"hands-on labs and quizzes: {LEVELS[i % len(LEVELS)]} {TOPICS[i % len(TOPICS)]}",
            )
            for i in range(courses)
        ],
        columns=["id", "title", "text"],
    )


def _enrolments(learners: int, courses: int, seed: int, taken: tuple[int, int] = (4, 10)) -> pd.DataFrame:
    """``taken`` (low, high) distinct courses per learner, three times likelier from the learner's favourite
    topic."""
    rng = np.random.default_rng(seed)
    rows = []
    for learner in range(learners):
        weights = np.where(np.arange(courses) % len(TOPICS) == rng.integers(len(TOPICS)), 3.0, 1.0)
        chosen = rng.choice(
            courses, min(courses, rng.integers(*taken)), replace=False, p=weights / weights.sum()
        )
        rows += [(f"U{learner:04d}", f"C{c:03d}") for c in chosen]
    return pd.DataFrame(rows, columns=["user", "item"])


# --- the generic format: canonical column names, mapped onto themselves ---


def _write_generic(
    folder: Path,
    courses: pd.DataFrame,
    events: pd.DataFrame,
    learners: pd.DataFrame | None = None,
    scale: tuple[float, float] = (1, 5),
) -> list[str]:
    """CSV files named after their tables plus a mapping of every column onto itself; the CLI's source
    flags."""
    folder.mkdir(parents=True, exist_ok=True)
    mapping: dict = {"rating_scale": list(scale)} if "rating" in events else {}
    for name, frame in (("learners", learners), ("courses", courses), ("interactions", events)):
        if frame is not None:
            frame.to_csv(folder / f"{name}.csv", index=False)
            mapping[name] = {"file": f"{name}.csv", "columns": {c: c for c in frame.columns}}
    (folder / "mapping.yaml").write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    return ["--format", "generic", "--data", str(folder / "mapping.yaml")]


def _courses(n: int) -> pd.DataFrame:
    return _catalogue(n).rename(columns={"id": "course_id", "text": "description"})


def _events(learners: int, courses: int, seed: int = 0, taken: tuple[int, int] = (4, 10)) -> pd.DataFrame:
    """Enrolments with a 1-5 rating and a time within twelve weeks."""
    events = _enrolments(learners, courses, seed, taken).rename(
        columns={"user": "learner_id", "item": "course_id"}
    )
    rng = np.random.default_rng(seed + 1)
    hours = pd.to_timedelta(rng.integers(0, 12 * 7 * 24, len(events)), unit="h")
    return events.assign(rating=rng.integers(1, 6, len(events)), ts=pd.Timestamp("2024-01-01") + hours)


def ratings_only(folder: Path) -> list[str]:
    """user, course, rating, time and nothing else: no grade, completion or watch share."""
    return _write_generic(folder, _courses(40), _events(200, 40, seed=2))


def one_course(folder: Path) -> list[str]:
    return _write_generic(folder, _courses(1), _events(60, 1))


def one_learner(folder: Path) -> list[str]:
    return _write_generic(folder, _courses(30), _events(1, 30, taken=(12, 13)))


def single_interactions(folder: Path) -> list[str]:
    return _write_generic(folder, _courses(30), _events(150, 30, taken=(1, 2)))


def three_courses_untimed(folder: Path) -> list[str]:
    return _write_generic(folder, _courses(30), _events(120, 30, taken=(3, 4)).drop(columns="ts"))


def equal_ratings(folder: Path) -> list[str]:
    return _write_generic(folder, _courses(30), _events(120, 30).assign(rating=4))


def no_course_text(folder: Path) -> list[str]:
    """A title is required: here it is a dash, so no course has a word of text."""
    return _write_generic(folder, _courses(30)[["course_id"]].assign(title="-"), _events(120, 30))


def no_timestamps(folder: Path) -> list[str]:
    return _write_generic(folder, _courses(30), _events(120, 30).drop(columns="ts"))


def equal_timestamps(folder: Path) -> list[str]:
    return _write_generic(folder, _courses(30), _events(120, 30).assign(ts=pd.Timestamp("2024-03-01 10:00")))


def dominant_course(folder: Path) -> list[str]:
    """Three interaction rows per learner, 90% of them on C000 (repeat visits are duplicates: the latest is
    kept)."""
    rng = np.random.default_rng(4)
    learners, rows = 150, 3
    picked = np.zeros(learners * rows, dtype=int)
    others = rng.choice(learners * rows, learners * rows // 10, replace=False)
    picked[others] = rng.integers(1, 30, len(others))
    events = pd.DataFrame(
        {
            "learner_id": np.repeat([f"U{u:04d}" for u in range(learners)], rows),
            "course_id": [f"C{c:03d}" for c in picked],
            "rating": rng.integers(1, 6, learners * rows),
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(learners * rows), unit="h"),
        }
    )
    return _write_generic(folder, _courses(30), events)


def large_catalogue(folder: Path) -> list[str]:
    """300 courses, of which learners took only the first 30."""
    return _write_generic(folder, _courses(300), _events(120, 30))


def unicode_ids(folder: Path) -> list[str]:
    emoji = "😀🚀🐍📊☁️🧪🌍🎓"
    courses = _courses(30)
    ids = {c: f"课程-{emoji[i % len(emoji)]}-é{i:02d}" for i, c in enumerate(courses["course_id"])}
    courses = courses.assign(
        course_id=courses["course_id"].map(ids),
        title=[
            f"{emoji[i % len(emoji)]} {t} — naïve café, 日本語, Ελληνικά"
            for i, t in enumerate(courses["title"])
        ],
    )
    events = _events(120, 30)
    events = events.assign(
        course_id=events["course_id"].map(ids), learner_id="学習者-🙂-" + events["learner_id"]
    )
    return _write_generic(folder, courses, events)


def long_descriptions(folder: Path) -> list[str]:
    """Every description 20,000 characters (the limit); the first 25,000, truncated as a repair."""
    courses = _courses(30)
    texts = [(text + ". ") * (25_000 // len(text) + 1) for text in courses["description"]]
    courses["description"] = [t[:25_000] if i == 0 else t[:20_000] for i, t in enumerate(texts)]
    return _write_generic(folder, courses, _events(120, 30))


def profiles_without_interactions(folder: Path) -> list[str]:
    """240 learners with a job and software; only the first 120 took a course."""
    jobs = ("data analyst", "web developer", "cloud engineer", "statistician")
    learners = pd.DataFrame(
        {
            "learner_id": [f"U{u:04d}" for u in range(240)],
            "job": [jobs[u % len(jobs)] for u in range(240)],
            "software": [("Excel; SQL", "Python; Docker", "AWS")[u % 3] for u in range(240)],
        }
    )
    return _write_generic(folder, _courses(30), _events(120, 30), learners)


def ids_overlap_in_part(folder: Path) -> list[str]:
    """The courses and learners files miss a course and a learner of the interactions file (under 5%):
    dropped."""
    events = _events(150, 30)
    courses = _courses(30)
    rare = events["course_id"].value_counts().index[-1]  # the least taken course, missing from the catalogue
    share = (events["course_id"] == rare).mean()
    assert 0 < share < 0.05, share
    # one learner missing from learners
    learners = pd.DataFrame({"learner_id": events["learner_id"].unique()[1:]})
    return _write_generic(folder, courses[courses["course_id"] != rare], events, learners)


def ids_mostly_apart(folder: Path) -> list[str]:
    """The catalogue names other courses than the interactions do, but for a third of them."""
    courses = _courses(30)
    courses["course_id"] = [c if i < 10 else f"X{c}" for i, c in enumerate(courses["course_id"])]
    return _write_generic(folder, courses, _events(120, 30))


def ibm_enrolments(folder: Path) -> list[str]:
    """IBM's ratings.csv: 2.0 audited, 3.0 completed (about 95%)."""
    folder.mkdir(parents=True)
    _catalogue(40).rename(columns={"id": "COURSE_ID", "title": "TITLE", "text": "DESCRIPTION"}).to_csv(
        folder / "course_processed.csv", index=False
    )
    enrolments = _enrolments(200, 40, seed=0)
    completed = np.random.default_rng(1).random(len(enrolments)) < 0.95
    enrolments.assign(rating=np.where(completed, 3.0, 2.0)).to_csv(folder / "ratings.csv", index=False)
    return ["--format", "ibm", "--data", str(folder)]


# --- running a dataset once per session ---


@dataclass
class Run:
    """One ``coursepilot`` command on a dataset: exit status, console output and where it wrote."""

    code: int
    output: str
    out: Path
    home: Path

    def text(self, where: str) -> str:
        """report.md's text, or an asset's latest materialization metadata as text."""
        if where == "report.md":
            return (self.out / "report.md").read_text()
        return json.dumps(self.metadata(where), default=str, ensure_ascii=False)

    def metadata(self, asset: str) -> dict:
        with DagsterInstance.from_config(str(self.home / "dagster")) as instance:
            event = instance.get_latest_materialization_event(AssetKey(asset))
        assert event is not None, f"{asset} was not materialized"
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    def fingerprint(self) -> tuple:
        """The cleaned tables' content and the registered model versions: what a stopped run must leave
        alone."""
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            tables = tuple(
                con.execute(f"SELECT count(*), sum(hash(t)) FROM {name} t").fetchone() for name in CLEANED
            )
        with sqlite3.connect(self.home / "mlflow.db") as db:
            return tables, db.execute("SELECT name, version FROM model_versions ORDER BY 1, 2").fetchall()

    def tables(self) -> set[str]:
        """The warehouse's tables (none when it was never created)."""
        if not (self.home / "warehouse.duckdb").exists():
            return set()
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


@pytest.fixture(scope="session")
def onnx_export(tmp_path_factory) -> Path:
    """The MiniLM ONNX export, made once and copied into every run's home (each would otherwise export its
    own)."""
    from coursepilot.embeddings import EmbeddingCache, embed_texts

    folder = tmp_path_factory.mktemp("embeddings")
    embed_texts(["warm-up"], cache=EmbeddingCache(folder), backend="onnx")
    return folder / "onnx"


def _corpus_selected(session) -> dict[str, object]:
    """{dataset: builder} of the corpus rows this session runs."""
    selected = {}
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if {"name", "build"} <= params.keys():
            selected[params["name"]] = params["build"]
    return selected


@pytest.fixture(scope="session")
def evaluated(request, tmp_path_factory, onnx_export):
    """``evaluated(name, builder)``: the ``coursepilot evaluate`` run of a dataset, made once per session.

    The first call starts every selected corpus dataset, two at a time (the machine has 2 cores and most of a
    run is one process waiting on its own steps).
    """

    def evaluate(folder: Path, build) -> Run:
        out, home = folder / "out", folder / "home"
        shutil.copytree(onnx_export, home / "embeddings" / "onnx")
        done = cli("evaluate", *build(folder / "data"), "--out", str(out), "--home", str(home), check=False)
        return Run(done.returncode, done.stdout + done.stderr, out, home)

    with ThreadPoolExecutor(2) as pool:
        runs: dict[str, Future] = {}

        def run(name: str, build) -> Run:
            for key, builder in {**_corpus_selected(request.session), name: build}.items():
                if key not in runs:
                    runs[key] = pool.submit(evaluate, tmp_path_factory.mktemp(key), builder)
            return runs[name].result()

        yield run


# --- the corpus ---

COMPLETES, STOPS = "completes", "stops"
LABELS = {"report.md": "learner_labels: no classifier could learn"}


def _case(name: str, build, outcome: str, says):
    return pytest.param(name, build, outcome, says, id=name)


CORPUS = [
    # dataset, builder, outcome, and what says why: {report.md or an asset's metadata: text} or the stop's
    # reason
    _case("ratings_only", ratings_only, COMPLETES, LABELS),
    _case("enrolment_states_ibm", ibm_enrolments, COMPLETES, {"report.md": "training label non-adaptive"}),
    _case("one_course", one_course, STOPS, "the catalogue holds 1 course"),
    _case("one_learner", one_learner, STOPS, "one learner has interactions"),
    _case("single_interaction_each", single_interactions, STOPS, "no learner took 3 or more courses"),
    _case(
        "three_courses_each_untimed",
        three_courses_untimed,
        STOPS,
        "no learner took more than 3 courses and there are no timestamps",
    ),
    _case("equal_ratings", equal_ratings, COMPLETES, LABELS),
    _case(
        "no_course_text",
        no_course_text,
        COMPLETES,
        {
            "report.md": "content_tfidf: not trained (no course text",
            "tfidf_course_vectors": "no course text",
            "course_labels": "too few courses per class",
        },
    ),
    _case(
        "no_timestamps",
        no_timestamps,
        COMPLETES,
        {"report.md": "trending: not trained (no interaction times)"},
    ),
    _case(
        "equal_timestamps",
        equal_timestamps,
        COMPLETES,
        {"report.md": "trending: not trained (every interaction has the same time"},
    ),
    _case(
        "dominant_course",
        dominant_course,
        COMPLETES,
        {
            "interactions": "duplicate key",
            "peer_recommendations": "skipped: fewer than two learners",
            **LABELS,
        },
    ),
    _case("large_catalogue", large_catalogue, COMPLETES, LABELS),
    _case("unicode_ids", unicode_ids, COMPLETES, LABELS),
    _case(
        "long_descriptions",
        long_descriptions,
        COMPLETES,
        {
            "courses": "description truncated to 20000 characters",
            "course_embeddings": '"truncated_over_256_tokens": 30',
        },
    ),
    _case("profiles_without_interactions", profiles_without_interactions, COMPLETES, LABELS),
    _case("ids_overlap_in_part", ids_overlap_in_part, COMPLETES, {"interactions": "unknown course_id"}),
    _case("ids_mostly_apart", ids_mostly_apart, STOPS, "name a course_id missing from courses"),
]


def _assert_completed(run: Run, says: dict[str, str]) -> None:
    assert run.code == 0, run.output[-4000:]
    report = json.loads((run.out / "report.json").read_text())
    assert (run.out / "report.md").exists() and 0 <= report["models"]["hybrid"]["ndcg@10"] <= 1
    for where, text in says.items():
        assert text in run.text(where), (where, run.text(where)[-3000:])


def _assert_stopped(run: Run, reason: str) -> None:
    """One failure line, naming the reason, and no cleaned table written."""
    words = " ".join(run.output.split())  # the console wraps long lines
    assert run.code == 1 and words.count("Evaluation failed:") == 1, run.output[-4000:]
    assert reason in words.split("Evaluation failed:")[1], run.output[-4000:]
    assert not set(CLEANED) & run.tables(), run.tables()


@pytest.mark.slow
@pytest.mark.parametrize("name,build,outcome,says", CORPUS)
def test_degenerate_dataset_completes_or_stops_cleanly(evaluated, name, build, outcome, says):
    run = evaluated(name, build)
    assert "Traceback" not in run.output, run.output[-4000:]
    (_assert_completed if outcome == COMPLETES else _assert_stopped)(run, says)


@pytest.mark.slow
def test_run_serves_unicode_ids_then_a_mismatched_source_changes_nothing(tmp_path, onnx_export):
    """``coursepilot run``: emoji ids reach serving; then files whose ids mostly differ leave everything as it
    was."""
    home = tmp_path / "home"
    shutil.copytree(onnx_export, home / "embeddings" / "onnx")
    done = cli("run", *unicode_ids(tmp_path / "unicode"), "--log-level", "WARNING", home=home, check=False)
    assert done.returncode == 0 and "Traceback" not in done.stdout + done.stderr, done.stdout[-4000:]
    learner = "学習者-🙂-U0003"
    shown = " ".join(cli("recommend", "--learner", learner, "-k", "3", home=home).stdout.split())
    assert f"Top 3 for learner {learner}" in shown and shown.count("课程-") >= 3, shown
    assert "学習者-🙂-U0" in cli("peers", "--learner", learner, "-k", "3", home=home).stdout
    before = Run(0, "", tmp_path, home).fingerprint()

    failed = cli(
        "run", *ids_mostly_apart(tmp_path / "apart"), "--log-level", "WARNING", home=home, check=False
    )
    stopped = Run(failed.returncode, failed.stdout + failed.stderr, tmp_path, home)
    assert "Traceback" not in stopped.output and stopped.code == 1, stopped.output[-4000:]
    assert "name a course_id missing from courses" in " ".join(stopped.output.split()).split("Run failed")[1]
    assert stopped.fingerprint() == before  # the cleaned tables, the models and the champion


@pytest.mark.parametrize(
    "build,reason",
    [
        (one_course, "the catalogue holds 1 course"),
        (one_learner, "one learner has interactions"),
        (single_interactions, "no learner took 3 or more courses (at most 1)"),
        (three_courses_untimed, "no learner took more than 3 courses"),
        (ratings_only, None),
    ],
)
def test_the_pipeline_load_refuses_data_with_nothing_to_rank(tmp_path, build, reason):
    """``Policy(rankable=True)``: valid data with nothing to rank stops before the cleaned tables are
    written."""
    con = duckdb.connect()
    write_raw(con, load_source("generic", build(tmp_path)[-1]))
    if reason is None:
        assert clean(con, Policy(rankable=True)).rows_out["courses"] == 40
        return
    with pytest.raises(ValidationError) as caught:
        clean(con, Policy(rankable=True))
    assert caught.value.rule == "rankable data" and reason in str(caught.value), str(caught.value)
    assert not {r[0] for r in con.execute("SHOW TABLES").fetchall()} & set(CLEANED)
    assert clean(con).rows_out["interactions"] > 0  # the contract alone accepts it: the data is valid


# --- the two cases that first showed a stage without anything to learn ---


def _labels(run: Run) -> tuple:
    with duckdb.connect(str(run.home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT count(*), count(adaptive), min(p_adaptive), max(p_adaptive), "
            "count(training_label), bool_or(training_label) FROM learner_labels"
        ).fetchone()


def _assert_ranked(report: dict, source_format: str):
    assert report["source"]["format"] == source_format
    for model in ("popularity", "als", "hybrid"):
        assert 0 < report["models"][model]["ndcg@10"] <= 1, model


@pytest.mark.slow
def test_ibm_enrolments_only_fall_back_to_neutral_learner_labels(evaluated):
    """IBM's ratings.csv: 2.0 audited, 3.0 completed (about 95%): nobody exceeds the median completion
    rate."""
    run = evaluated("enrolment_states_ibm", ibm_enrolments)
    assert run.code == 0, run.output[-4000:]
    metadata = run.metadata("learner_labels")
    _assert_ranked(json.loads((run.out / "report.json").read_text()), "ibm")
    assert "training label non-adaptive" in metadata["fallback"] and "chosen_model" not in metadata
    learners, adaptive, low, high, with_rule_label, any_adaptive = _labels(run)
    assert learners > 150 and adaptive == 0 and low == high == 0.5
    # the rule's single class, kept as the reason's evidence
    assert with_rule_label == learners and not any_adaptive


@pytest.mark.slow
def test_generic_ratings_only_fall_back_to_neutral_learner_labels(evaluated):
    """user, item, rating, time and nothing else: no grade, completion or watch share for the threshold
    rule."""
    run = evaluated("ratings_only", ratings_only)
    assert run.code == 0, run.output[-4000:]
    metadata = run.metadata("learner_labels")
    _assert_ranked(json.loads((run.out / "report.json").read_text()), "generic")
    assert metadata["label_source"] == "none" and "no performance feature" in metadata["fallback"]
    learners, adaptive, low, high, with_rule_label, _ = _labels(run)
    assert learners > 150 and adaptive == 0 and low == high == 0.5 and with_rule_label == 0
