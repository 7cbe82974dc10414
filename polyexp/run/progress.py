"""Progress over epochs: a live bar on a terminal, a sparse log line elsewhere (CI, log files)::

    progress = EpochProgress(500, "job 2/3 training")
    train(..., on_progress=progress)
    progress.close()
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from polyexp.run import stop

log = logging.getLogger(__name__)

_BAR = 30
_REDRAW_SECONDS = 0.1
_LOG_SECONDS = 10.0


class EpochProgress:
    """Call with the number of epochs done so far; ``close()`` when training stops."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total, self.label = total, label
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = self.shown = time.perf_counter()
        self.done = 0

    def __call__(self, done: int) -> None:
        stop.check()  # every epoch: a signal whose first raise was lost still stops the training
        self.done = done
        now = time.perf_counter()
        if self.live and (now - self.shown >= _REDRAW_SECONDS or done == self.total):
            filled = round(_BAR * done / self.total)
            bar = "#" * filled + "-" * (_BAR - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} epochs {now - self.started:5.1f}s")
            self.stream.flush()
            self.shown = now
        elif not self.live and now - self.shown >= _LOG_SECONDS and done < self.total:
            log.info("%s: epoch %d/%d (%.0f%%)", self.label, done, self.total, 100 * done / self.total)
            self.shown = now

    def close(self) -> None:
        if self.live and self.done:
            self.stream.write("\n")
            self.stream.flush()
