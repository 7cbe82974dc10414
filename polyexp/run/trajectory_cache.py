"""A content-addressed cache of trained trajectories: a sweep over averagings trains once.

An entry is keyed by the trajectory's identity (``polyexp.core.identity``: the config fields that change
training, the code of the plugins and of the training loop, the libraries and the platform) and
nothing else, and stores that identity beside the arrays, so ``python -m polyexp.cache info`` shows
what each entry was made with. Entries live in ``<cache dir>/trajectories/<key>.npz`` (the cache dir
is ``cache.dir``, else
``$POLYEXP_CACHE_DIR``, else ``$XDG_CACHE_HOME/polyexp`` or ``~/.cache/polyexp``). An entry is
written to a temporary file and renamed into place, so a killed job leaves no partial entry; jobs
that want the same entry take a file lock, so one trains and the others wait and reuse it; an entry
that fails to load is retrained, and one that finds no room (a full disk) is not kept, each with a
warning. Remove entries with ``python -m polyexp.cache clear`` (or delete the folder)::

    cache = TrajectoryCache(cache_dir())
    trajectory, reused = cache.fetch(trajectory_identity(plan), lambda: train(...))
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import logging
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from polyexp.core.errors import full_disk
from polyexp.core.identity import Identity
from polyexp.core.trajectory import Trajectory, read_meta, read_trajectory, write_trajectory

log = logging.getLogger(__name__)


def cache_dir(configured: str | None = None) -> Path:
    """``cache.dir``, else ``$POLYEXP_CACHE_DIR``, else ``$XDG_CACHE_HOME/polyexp`` or ``~/.cache/polyexp``."""
    if configured:
        return Path(configured).expanduser()
    if "POLYEXP_CACHE_DIR" in os.environ:
        return Path(os.environ["POLYEXP_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "polyexp"


class TrajectoryCache:
    """Trajectories on disk, one ``.npz`` file per key."""

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / "trajectories"

    def fetch(self, identity: Identity, train: Callable[[], Trajectory]) -> tuple[Trajectory, bool]:
        """The cached trajectory of ``identity`` (True), or ``train()``'s, stored for next time (False)."""
        key = identity.key
        with self._lock(key):
            trajectory = self.load(key)
            if trajectory is not None:
                return trajectory, True
            trajectory = train()
            try:
                self.store(key, trajectory, identity.describe())
            except OSError as exc:  # a full disk, mostly: the job goes on with what it trained
                log.warning("the trajectory cache cannot keep this trajectory (%s): a later job trains it again",
                            full_disk(exc) or exc)
            return trajectory, False

    def load(self, key: str) -> Trajectory | None:
        path = self.folder / f"{key}.npz"
        if not path.exists():
            return None
        try:
            trajectory, meta = read_trajectory(path)
            if meta.get("key") != key:
                raise ValueError(f"it holds key {meta.get('key')!r}")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("trajectory cache entry %s is corrupt (%s): training again", path, exc)
            path.unlink(missing_ok=True)
            return None
        return trajectory

    def store(self, key: str, trajectory: Trajectory, made_with: dict[str, Any] | None = None) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key}.npz"
        created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        write_trajectory(path, trajectory, {"key": key, "created": created, "made_with": made_with or {}})
        return path

    def entries(self) -> list[tuple[Path, dict[str, Any]]]:
        """Every entry and what it was made with (an entry that cannot be read: its error)."""
        found = []
        for path in sorted(self.folder.glob("*.npz")) if self.folder.exists() else []:
            try:
                found.append((path, read_meta(path)))
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                found.append((path, {"error": f"unreadable: {exc}"}))
        return found

    def clear(self) -> int:
        """Delete every entry, lock and leftover temporary file; return how many files went."""
        if not self.folder.exists():
            return 0
        files = [p for p in self.folder.iterdir() if p.is_file()]
        for path in files:
            path.unlink(missing_ok=True)
        return len(files)

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"{key}.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another job that is training the same trajectory")
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
