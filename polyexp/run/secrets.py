"""Secrets out of everything polyexp writes, logs and prints: a URI's password shown as ``***``.

MLflow's client accepts credentials in the tracking URI (``http://alice:PW@host:5000``). polyexp passes
the URI to MLflow as it is, and everywhere else shows it redacted: the runs' params and tags, the job's
files (its config, its report, Hydra's ``.hydra/*.yaml`` and ``multirun.yaml``), log records and
whatever reaches stdout or stderr::

    redact("tracking.uri=http://alice:PW@host:5000")   # 'tracking.uri=http://alice:***@host:5000'
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from polyexp.core.files import write_text

# scheme://user:password@, also as Hydra escapes an override's colons in its log (http\://alice\:PW@)
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*\\?://)(?P<user>[^:/@\s'\"\\]*)(?P<colon>\\?:)"
                       r"(?P<password>[^@/\s'\"]+)@")
HYDRA_FILES = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "multirun.yaml")


def redact(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``***``."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}{m['colon']}***@", text)


def holds_secret(*texts: str) -> bool:
    """Whether any of ``texts`` holds a URI with a password."""
    return any(redact(text) != text for text in texts)


def redacted(value: Any) -> Any:
    """A string redacted, a list or tuple of them item by item; anything else as it is."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (list, tuple)):
        return type(value)(redacted(item) for item in value)
    return value


def redact_hydra_files(folder: Path) -> None:
    """Rewrite the files Hydra keeps of a job (or a sweep) in ``folder`` where they hold a secret."""
    for name in HYDRA_FILES:
        path = folder / name
        if path.is_file():
            text = path.read_text()
            if redact(text) != text:
                write_text(path, redact(text))


class _RedactedStream:
    """A text stream whose writes are redacted (Hydra prints a failed job's overrides itself)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(redact(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def redact_output_if_secret(*texts: str) -> bool:
    """:func:`redact_output` when ``texts`` or ``$MLFLOW_TRACKING_URI`` hold a password; whether they do."""
    secret = holds_secret(*texts, os.environ.get("MLFLOW_TRACKING_URI", ""))
    if secret:
        redact_output()
    return secret


def redact_output() -> None:
    """From now on, redact every log record this process makes and every write to stdout and stderr (once)."""
    if isinstance(sys.stderr, _RedactedStream):
        return
    sys.stdout, sys.stderr = _RedactedStream(sys.stdout), _RedactedStream(sys.stderr)  # type: ignore[assignment]
    make_record = logging.getLogRecordFactory()

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        if redact(message) != message:
            record.msg, record.args = redact(message), ()
        return record

    logging.setLogRecordFactory(redacted_record)
