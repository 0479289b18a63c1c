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

import threading

IMPORTING = threading.RLock()
