"""The Open University Learning Analytics Dataset (OULAD).

A course is a module presentation (``AAA-2013J``); a learner is a student (demographics from the
student's first row in ``studentInfo.csv``); an interaction is a registration, with
- ``grade``: the weight-averaged score of the student's assessments in that presentation
  (a plain mean where all weights are 0), from ``studentAssessment.csv`` + ``assessments.csv``;
- ``completed``: ``final_result`` is Pass or Distinction;
- ``ts``: the registration day, counted from the presentation start (B = 1 February, J = 1 October);
- ``clicks``: summed ``sum_click`` from ``studentVle.csv`` when that file is present.
There are no course texts, ratings or difficulty labels in OULAD.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .base import SourceData, numeric, read_csv, with_provenance

INFO, COURSES, REGISTRATION = "studentInfo.csv", "courses.csv", "studentRegistration.csv"
ASSESSMENTS, SCORES, VLE_CLICKS = "assessments.csv", "studentAssessment.csv", "studentVle.csv"
KEY = ["code_module", "code_presentation"]
DEMOGRAPHICS = ["gender", "region", "highest_education", "imd_band", "age_band", "disability"]


def _course_id(frame: pd.DataFrame) -> pd.Series:
    return frame["code_module"].str.strip() + "-" + frame["code_presentation"].str.strip()


def _presentation_start(code: pd.Series) -> pd.Series:
    month = code.str[-1].map({"B": "02", "J": "10"}).fillna("01")
    return pd.to_datetime(code.str[:4] + "-" + month + "-01", errors="coerce")


def _grades(folder: Path) -> pd.DataFrame | None:
    if not ((folder / SCORES).exists() and (folder / ASSESSMENTS).exists()):
        return None
    scores = read_csv(folder / SCORES, ["id_assessment", "id_student", "score"])
    scores["score"] = numeric(scores, "score", folder / SCORES)
    assessments = read_csv(folder / ASSESSMENTS, [*KEY, "id_assessment", "weight"])
    assessments["weight"] = numeric(assessments, "weight", folder / ASSESSMENTS).fillna(0)
    joined = scores.merge(assessments, on="id_assessment", how="inner").dropna(subset=["score"])
    joined["course_id"] = _course_id(joined)
    joined["weighted"] = joined["score"] * joined["weight"]
    per = joined.groupby(["id_student", "course_id"]).agg(
        weighted=("weighted", "sum"), weight=("weight", "sum"), mean=("score", "mean")
    )
    grade = (per["weighted"] / per["weight"]).where(per["weight"] > 0, per["mean"])
    return grade.rename("grade").reset_index()


def load(path: str | Path) -> SourceData:
    folder = Path(path)
    info = read_csv(folder / INFO, [*KEY, "id_student", "final_result"])
    presentations = read_csv(folder / COURSES, [*KEY, "module_presentation_length"])
    files = [folder / INFO, folder / COURSES]

    courses = with_provenance(
        pd.DataFrame(
            {
                "course_id": _course_id(presentations),
                "title": "Open University module "
                + presentations["code_module"]
                + ", presentation "
                + presentations["code_presentation"],
                "theme": presentations["code_module"],
                "presentation_days": numeric(presentations, "module_presentation_length", folder / COURSES),
            }
        ),
        folder / COURSES,
    )

    learners = with_provenance(
        info[["id_student", *[c for c in DEMOGRAPHICS if c in info]]].rename(
            columns={"id_student": "learner_id"}
        ),
        folder / INFO,
    )
    learners = learners.drop_duplicates("learner_id")

    interactions = pd.DataFrame(
        {
            "learner_id": info["id_student"],
            "course_id": _course_id(info),
            "completed": info["final_result"].str.strip().isin(["Pass", "Distinction"]),
            "final_result": info["final_result"],
        }
    )
    for extra in ("num_of_prev_attempts", "studied_credits"):
        if extra in info:
            interactions[extra] = numeric(info, extra, folder / INFO)
    interactions = with_provenance(interactions, folder / INFO)

    if (folder / REGISTRATION).exists():
        reg = read_csv(folder / REGISTRATION, [*KEY, "id_student", "date_registration"])
        days = numeric(reg, "date_registration", folder / REGISTRATION)
        reg = pd.DataFrame(
            {
                "learner_id": reg["id_student"],
                "course_id": _course_id(reg),
                "ts": _presentation_start(reg["code_presentation"]) + pd.to_timedelta(days, unit="D"),
            }
        )
        interactions = interactions.merge(
            reg.drop_duplicates(["learner_id", "course_id"]), on=["learner_id", "course_id"], how="left"
        )
        files.append(folder / REGISTRATION)
    grades = _grades(folder)
    if grades is not None:
        grades = grades.rename(columns={"id_student": "learner_id"})
        interactions = interactions.merge(grades, on=["learner_id", "course_id"], how="left")
        files += [folder / SCORES, folder / ASSESSMENTS]
    if (folder / VLE_CLICKS).exists():
        vle = read_csv(folder / VLE_CLICKS, [*KEY, "id_student", "sum_click"])
        vle["sum_click"] = numeric(vle, "sum_click", folder / VLE_CLICKS)
        clicks = vle.assign(course_id=_course_id(vle)).groupby(["id_student", "course_id"])["sum_click"].sum()
        clicks = clicks.rename("clicks").reset_index().rename(columns={"id_student": "learner_id"})
        interactions = interactions.merge(clicks, on=["learner_id", "course_id"], how="left")
        interactions["clicks"] = interactions["clicks"].fillna(0)
        files.append(folder / VLE_CLICKS)
    return SourceData("oulad", learners, courses, interactions, None, files)
