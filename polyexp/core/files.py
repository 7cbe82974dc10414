"""Folders that must be writable, and files written whole or not at all."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from polyexp.core.errors import ConfigError


def make_folder(path: Path, field: str) -> Path:
    """Create ``path`` (and its parents); a ConfigError naming ``field`` if that is impossible."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".polyexp-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
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
        with open(temporary, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text.encode())
