"""Model arrays under ``<home>/models``: plain ``.npz`` (no pickles), written atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..home import ProjectHome


def model_path(home: ProjectHome, name: str) -> Path:
    return home.root / "models" / f"{name}.npz"


def save_arrays(home: ProjectHome, name: str, params: dict | None = None, **arrays: np.ndarray) -> Path:
    """Write ``<name>.npz`` (and the model's parameters as ``<name>.json``) atomically."""
    path = model_path(home, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        if params is not None:
            write_json(path.with_suffix(".json"), params)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_folder(home: ProjectHome, name: str, write) -> Path:
    """``<home>/models/<name>/`` written by ``write(folder)`` into a temporary folder, then swapped in: until
    the swap the last good folder stays whole, and a failed write leaves it untouched."""
    path = model_path(home, name).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=path.parent))
    try:
        write(tmp)
        old = path.with_name(f".{name}-old")
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def save_params(home: ProjectHome, name: str, params: dict) -> Path:
    """Write a model's parameters (or choice, or scores) as ``<name>.json`` atomically."""
    path = model_path(home, name).with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, params)
    return path


def load_params(home: ProjectHome, name: str) -> dict:
    path = model_path(home, name).with_suffix(".json")
    if not path.exists():
        raise FileNotFoundError(f"{path}: model {name!r} has not been trained in this project home")
    return json.loads(path.read_text())


def previous_choice(home: ProjectHome, name: str, key: str):
    """``key`` of the parameters the last run stored for model ``name``, or None when there is none."""
    try:
        return load_params(home, name).get(key)
    except FileNotFoundError:
        return None


def load_arrays(home: ProjectHome, name: str) -> dict[str, np.ndarray]:
    path = model_path(home, name)
    if not path.exists():
        raise FileNotFoundError(f"{path}: model {name!r} has not been trained in this project home")
    with np.load(path, allow_pickle=False) as arrays:
        return dict(arrays)
