"""One lock for the imports that code run by pipeline steps makes lazily.

Steps run on threads side by side (pipelines/threads.py). Python locks each module while it is first
imported, but two threads first importing modules of one package whose modules import each other (SQLAlchemy's
ORM, which MLflow's store loads; torch; matplotlib) can each wait on a module the other holds. Python breaks
that deadlock by handing one thread a half-initialised module, and its step fails with an ``AttributeError``
(a CI run of 2026-12-04, in ``course_labels``). So every lazy import of a third-party package in step code,
and every first call into a library that imports lazily itself (MLflow's store, its model logging), holds
``IMPORTING``: first imports happen one thread at a time, and later ones find the modules loaded.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType

IMPORTING = threading.RLock()
"""Held only while importing and while a library's first call imports: never around code of this project that
waits on another lock (the encoder's, the BLAS settings'), which a thread importing could be holding."""


def module(name: str) -> ModuleType:
    """``import name``, under ``IMPORTING`` only the first time: for code called again and again (every
    ranked batch). A module another thread is still importing is in ``sys.modules`` already; Python's own
    import then waits for it to finish."""
    if name in sys.modules:
        return importlib.import_module(name)
    with IMPORTING:
        return importlib.import_module(name)
