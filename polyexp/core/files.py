"""Folders that must be writable, and files written whole or not at all."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from polyexp.core.errors import ConfigError, PolyexpError, full_disk


def make_folder(path: Path, field: str) -> Path:
    """Create ``path`` (and its parents); a ConfigError naming ``field`` if that is impossible, a
    PolyexpError if its disk is full."""
    probe = path / f".polyexp-write-test-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        try:
            # More than Hydra writes before the job (.hydra/, some 10 KB): a full disk ends here, in one line
            probe.write_bytes(bytes(1 << 16))
        finally:
            probe.unlink(missing_ok=True)
    except OSError as exc:
        if full_disk(exc):
            raise PolyexpError(f"the disk is full: cannot write in {path} ({exc.strerror})") from None
        raise ConfigError.field(field, str(path), f"the folder cannot be written ({exc.strerror})") from None
    return path


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[IO[bytes]]:
    """Write a file through a temporary sibling and rename it: readers see all of it or nothing::

        with atomic_write(path) as handle:
            handle.write(data)
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with naming(path):
            with open(temporary, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Raise an OSError of the block again naming ``path``: a failed write (a full disk) names no file,
    and a temporary sibling is not the file the user knows."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc  # of the same subclass (PermissionError...)


def write_text(path: Path, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text.encode())
