"""Creating a SQLite tracking store so that no signal, kill or second command leaves it half made.

MLflow creates a SQLite store by migrating an empty file in place, table by table, over seconds. A
Ctrl-C in that time, or a second command migrating the same file at once, leaves a store every later
command refuses (``duplicate column name``, ``table ... already exists``). Here the store is built
under a name of its own and renamed into place when whole, while this process holds a lock on the
folder; a second command waits for the lock and finds the finished store::

    create_store(Path("/work/mlflow.db"), "/work/mlartifacts")   # no-op when it exists
    MlflowClient("sqlite:////work/mlflow.db")                    # opens a whole store

A build stopped by SIGKILL leaves only its temporary file (``.mlflow.db.creating-<pid>``), which the
next creation removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def create_store(path: Path, artifact_root: str) -> None:
    """Create the MLflow store ``path`` (whole, or not at all) unless it exists; wait for another creator."""
    if path.exists():
        return
    with _folder_locked(path.parent):
        if path.exists():  # another command made it while this one waited
            return
        for stale in path.parent.glob(f".{path.name}.creating-*"):  # left by a creator that was killed
            stale.unlink(missing_ok=True)
        building = path.with_name(f".{path.name}.creating-{os.getpid()}")
        try:
            _migrate(building, artifact_root)
            os.replace(building, path)
        finally:
            building.unlink(missing_ok=True)
            path.with_name(building.name + "-journal").unlink(missing_ok=True)


def _migrate(path: Path, artifact_root: str) -> None:
    """Run MLflow's migrations on a new SQLite file, and close it."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{path}", artifact_root)
    store.engine.dispose()  # the file is renamed next: no connection may stay open on it


@contextlib.contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` for the block: commands creating a store in it go one at a time."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing releases the lock
