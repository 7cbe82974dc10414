"""A content-addressed cache of trained trajectories: a sweep over weightings trains once.

An entry is keyed by everything that changes training (data, model, optimizer, epochs, batch size,
window, seed, and the versions of TensorFlow, Keras and polyexp's training loop) and nothing else.
Entries live in ``<cache dir>/trajectories/<key>.npz`` (the cache dir is ``cache.dir``, else
``$POLYEXP_CACHE_DIR``, else ``$XDG_CACHE_HOME/polyexp`` or ``~/.cache/polyexp``). An entry is
written to a temporary file and renamed into place, so a killed job leaves no partial entry; jobs
that want the same entry take a file lock, so one trains and the others wait and reuse it; an entry
that fails to load is retrained, with a warning. Remove entries with ``python -m polyexp.cache
clear`` (or delete the folder)::

    cache = TrajectoryCache(default_cache_dir())
    trajectory, reused = cache.fetch(key, lambda: train(...))
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from polyexp.trajectory import Trajectory, read_trajectory, write_trajectory

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    if "POLYEXP_CACHE_DIR" in os.environ:
        return Path(os.environ["POLYEXP_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "polyexp"


def training_key(training_config: Mapping[str, Any], loop_version: int) -> str:
    """The cache key: a hash of what changes training and of the code and libraries that train."""
    material = {
        "config": training_config,
        "versions": {pkg: metadata.version(pkg) for pkg in ("tensorflow", "keras")},
        "loop": loop_version,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


class TrajectoryCache:
    """Trajectories on disk, one ``.npz`` file per key."""

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / "trajectories"

    def fetch(self, key: str, train: Callable[[], Trajectory]) -> tuple[Trajectory, bool]:
        """The cached trajectory for ``key`` (True), or ``train()``'s, stored for next time (False)."""
        with self._lock(key):
            trajectory = self.load(key)
            if trajectory is not None:
                return trajectory, True
            trajectory = train()
            self.store(key, trajectory)
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

    def store(self, key: str, trajectory: Trajectory) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key}.npz"
        write_trajectory(path, trajectory, {"key": key})
        return path

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


def main(argv: list[str] | None = None) -> int:
    """``python -m polyexp.cache [info|clear] [DIR]``: show or empty the trajectory cache."""
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "info"
    root = Path(args[1]) if len(args) > 1 else default_cache_dir()
    cache = TrajectoryCache(root)
    if command == "clear":
        print(f"removed {cache.clear()} files from {cache.folder}")
    elif command == "info":
        entries = sorted(cache.folder.glob("*.npz")) if cache.folder.exists() else []
        size = sum(p.stat().st_size for p in entries)
        print(f"{cache.folder}: {len(entries)} trajectories, {size / 1e6:.1f} MB")
    else:
        print("usage: python -m polyexp.cache [info|clear] [DIR]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
