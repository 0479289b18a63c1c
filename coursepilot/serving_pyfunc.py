"""The MLflow pyfunc wrapper of :class:`coursepilot.registry.ServingModel`, logged as code.

MLflow stores this file with the model and runs it at load time (models from code), so nothing is
pickled: the model's state is the bundle of arrays and Parquet tables next to it.
"""

import mlflow
import pandas as pd

from coursepilot.registry import ServingModel


class CoursepilotRecommender(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.model = ServingModel(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.model.predict(pd.DataFrame(model_input))


mlflow.models.set_model(CoursepilotRecommender())
