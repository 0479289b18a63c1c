"""Resources for the model stages: the sentence embedder and MLflow tracking."""

from __future__ import annotations

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from coursepilot.embeddings import MODEL_NAME, EmbeddingCache, EmbedStats, embed_texts
from coursepilot.tracking import Tracker

from .home import ProjectHomeResource


class EmbedderResource(ConfigurableResource):
    """all-MiniLM-L6-v2 through sentence-transformers, offline, with a cache under the project home."""

    home: ProjectHomeResource

    model: str = Field(
        default=MODEL_NAME, description=f"{MODEL_NAME} (packaged weights) or a local model folder"
    )
    device: str = Field(default="cpu", description="torch device")
    batch_size: int = Field(
        default=32, description="sentences per forward pass (32 measured fastest on 2 cores)"
    )
    backend: str = Field(
        default="onnx",
        description="onnx (default: the same weights run by onnxruntime, measured 28% "
        "faster, cosine 1.000000 to torch), torch (sentence-transformers; "
        "needed for a device other than cpu) or onnx_int8 (weights quantised to int8: "
        "1.8x onnx's speed, lowest cosine 0.987 to torch; MARS content nDCG@10 -0.003, "
        "so not the default)",
    )
    preprocess: bool = Field(
        default=False,
        description="lower-case and drop stop words before encoding "
        "(measured: raw text does better with MiniLM)",
    )

    def embed(self, texts: list[str], stats: EmbedStats | None = None) -> np.ndarray:
        return embed_texts(
            texts,
            self.model,
            self.device,
            self.batch_size,
            EmbeddingCache(self.home.home.embeddings),
            stats,
            self.backend,
        )


class TrackingResource(ConfigurableResource):
    """MLflow runs in ``<home>/mlflow.db`` with artifacts in ``<home>/mlartifacts``."""

    home: ProjectHomeResource
    experiment: str = Field(default="coursepilot", description="MLflow experiment name")

    def tracker(self) -> Tracker:
        return Tracker(self.home.home, self.experiment)
