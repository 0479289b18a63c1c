"""The model store: what the assets keep under ``<home>/models`` for each other, typed and written atomically.

An :class:`Entry` names a file and the type it holds (a dataclass, or ``dict`` for a model's own parameters);
:class:`ModelStore` saves and loads entries as JSON, their arrays as plain ``.npz`` (no pickles).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
from scipy import sparse

from ..home import ProjectHome


def flatten_arrays(arrays: dict) -> dict[str, np.ndarray]:
    """Sparse matrices as ``<key>.data|indices|indptr|shape`` (an .npz holds plain arrays only)."""
    out = {}
    for key, value in arrays.items():
        if sparse.issparse(value):
            value = value.tocsr()
            out.update(
                {
                    f"{key}.data": value.data,
                    f"{key}.indices": value.indices,
                    f"{key}.indptr": value.indptr,
                    f"{key}.shape": np.array(value.shape),
                }
            )
        else:
            out[key] = np.asarray(value)
    return out


def unflatten_arrays(arrays) -> dict:
    """The arrays of an opened ``.npz``, the sparse matrices :func:`flatten_arrays` split put together."""
    out = {
        key: arrays[key]
        for key in arrays.files
        if not key.endswith((".data", ".indices", ".indptr", ".shape"))
    }
    for key in {k.rsplit(".", 1)[0] for k in arrays.files if k.endswith(".indptr")}:
        out[key] = sparse.csr_matrix(
            (arrays[f"{key}.data"], arrays[f"{key}.indices"], arrays[f"{key}.indptr"]),
            shape=tuple(arrays[f"{key}.shape"]),
        )
    return out


def _model_path(home: ProjectHome, name: str) -> Path:
    return home.root / "models" / f"{name}.npz"


def _save_arrays(home: ProjectHome, name: str, params: dict | None = None, **arrays: np.ndarray) -> Path:
    """Write ``<name>.npz`` (and the model's parameters as ``<name>.json``) atomically."""
    path = _model_path(home, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, **flatten_arrays(arrays))
        if params is not None:
            _write_json(path.with_suffix(".json"), params)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _save_folder(home: ProjectHome, name: str, write) -> Path:
    """``<home>/models/<name>/`` written by ``write(folder)`` into a temporary folder, then swapped in: until
    the swap the last good folder stays whole, and a failed write leaves it untouched."""
    path = _model_path(home, name).with_suffix("")
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


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _save_params(home: ProjectHome, name: str, params: dict) -> Path:
    """Write a model's parameters (or choice, or scores) as ``<name>.json`` atomically."""
    path = _model_path(home, name).with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(path, params)
    return path


def _load_params(home: ProjectHome, name: str) -> dict:
    path = _model_path(home, name).with_suffix(".json")
    if not path.exists():
        raise FileNotFoundError(f"{path}: model {name!r} has not been trained in this project home")
    return json.loads(path.read_text())


def _load_arrays(home: ProjectHome, name: str) -> dict[str, np.ndarray]:
    path = _model_path(home, name)
    if not path.exists():
        raise FileNotFoundError(f"{path}: model {name!r} has not been trained in this project home")
    with np.load(path, allow_pickle=False) as arrays:
        return unflatten_arrays(arrays)


T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One thing an asset keeps for later ones: its file name under ``<home>/models`` and its type."""

    name: str
    kind: type[T]  # a dataclass, or dict for a model's own parameters

    def encode(self, value: T) -> dict:
        return asdict(value) if is_dataclass(value) else dict(value)

    def decode(self, data: dict) -> T:
        return data if self.kind is dict else self.kind(**data)


class ModelStore:
    """Typed entries of one project home: JSON for the values, ``.npz`` beside them for arrays."""

    def __init__(self, home: ProjectHome):
        self.home = home

    def save(self, entry: Entry[T], value: T, arrays: dict | None = None) -> Path:
        """Write ``value``, and ``arrays`` (numpy or scipy sparse) as ``<name>.npz``."""
        if arrays is not None:
            return _save_arrays(self.home, entry.name, entry.encode(value), **arrays)
        return _save_params(self.home, entry.name, entry.encode(value))

    def load(self, entry: Entry[T]) -> T:
        """The stored value; FileNotFoundError naming the entry when no run has stored it yet."""
        return entry.decode(_load_params(self.home, entry.name))

    def last(self, entry: Entry[T]) -> T | None:
        """The stored value, or None when there is none (the first run)."""
        try:
            return self.load(entry)
        except FileNotFoundError:
            return None

    def arrays(self, entry: Entry) -> dict[str, np.ndarray]:
        return _load_arrays(self.home, entry.name)

    def path(self, entry: Entry, suffix: str) -> Path:
        """Where a file of the entry's own format goes (``.pt``, ``.png``)."""
        return _model_path(self.home, entry.name).with_suffix(suffix)

    def save_folder(self, entry: Entry, write) -> Path:
        return _save_folder(self.home, entry.name, write)
