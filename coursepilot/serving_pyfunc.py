"""The MLflow pyfunc wrapper of :class:`coursepilot.registry.ServingModel`, logged as code.

MLflow stores this file with the model and runs it at load time (models from code), so nothing is
pickled: the model's state is the bundle of arrays and Parquet tables next to it.

Each input row is answered on its own, so one bad row does not fail a batch (``mlflow models serve``):
``source`` says how (``learner``: a known learner's history; ``cold_start``: the profile text, for a new or
unknown learner; ``error``: neither, the reason in ``error``). A request without one answerable row is
refused with those reasons (HTTP 400 over REST, without a stack trace).
"""

import math

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from coursepilot.registry import ServingModel

COLUMNS = {
    "query": "int64",
    "learner_id": "string",
    "source": "string",
    "rank": "Int64",
    "course_id": "string",
    "title": "string",
    "score": "Float64",
    "reason": "string",
    "error": "string",
}
"""Output columns and their nullable types: what a row lacks is null in JSON, not NaN."""


class UnanswerableRequest(MlflowException, ValueError):
    """No row of the request names a known learner or gives a profile text (a ValueError for in-process
    callers)."""


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def _k(value) -> int | None:
    """How many courses a row asks for (10 when absent), or None when it is not a whole number of at least
    1."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 10
    if isinstance(value, (bool, str)) or not float(value).is_integer() or value < 1:
        return None
    return int(value)


class CoursepilotRecommender(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.model = ServingModel(context.artifacts["bundle"])

    def _source(self, learner: str, profile: str, k: int | None) -> tuple[str, str | None]:
        """How a row is answered: ``learner``, ``cold_start`` or ``error`` with the reason."""
        if k is None:
            return "error", "k must be a whole number of at least 1"
        if learner in self.model.learner_ids:
            return "learner", None
        if profile:
            return "cold_start", None
        who = f"unknown learner {learner!r}" if learner else "no learner_id"
        return "error", f"{who} and no profile text; a new learner needs a profile text"

    def _answer(self, query: int, row: dict) -> pd.DataFrame:
        learner, profile, k = _text(row.get("learner_id")), _text(row.get("profile")), _k(row.get("k"))
        source, error = self._source(learner, profile, k)
        if error:
            return pd.DataFrame(
                {"query": [query], "learner_id": [learner or None], "source": [source], "error": [error]}
            )
        asked = pd.DataFrame({"learner_id": [learner], "profile": [profile], "k": [k]})
        return self.model.predict(asked).assign(query=query, source=source, error=None)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        rows = pd.DataFrame(model_input).to_dict("records")
        answers = [self._answer(query, row) for query, row in enumerate(rows)]
        out = pd.concat(answers, ignore_index=True) if answers else pd.DataFrame()
        out = out.reindex(columns=list(COLUMNS)).astype(COLUMNS)
        if len(out) and (out["source"] == "error").all():
            reasons = "; ".join(f"row {query}: {error}" for query, error in zip(out["query"], out["error"]))
            raise UnanswerableRequest(reasons, INVALID_PARAMETER_VALUE)
        return out


mlflow.models.set_model(CoursepilotRecommender())
