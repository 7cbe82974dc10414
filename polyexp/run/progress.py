"""Progress over long work (epochs trained, weight sets scored): a live bar on a terminal, a sparse log
line elsewhere (CI, log files), each with the time left::

    progress = Progress(500, "job 2/3 training", "epochs")
    train(..., on_progress=progress)
    progress.close()
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from polyexp.run.stop import Stop, process_stop

log = logging.getLogger(__name__)

_BAR = 30
_REDRAW_SECONDS = 0.1
_LOG_SECONDS = 10.0


class Progress:
    """Call with the amount done so far (and the total, where it grew); ``close()`` when the work stops.

    On a terminal, the bar appears once ``quiet_seconds`` have passed: work that ends sooner shows none.
    """

    def __init__(
        self, total: float, label: str, unit: str, stream: TextIO | None = None, *, quiet_seconds: float = 0.0,
        stop: Stop | None = None,
    ) -> None:
        self.total, self.label, self.unit, self.quiet_seconds = total, label, unit, quiet_seconds
        self.stop = stop or process_stop()
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = self.shown = time.perf_counter()
        self.done = 0.0
        self.drawn = False

    def __call__(self, done: float, total: float | None = None) -> None:
        self.stop.check()  # a signal whose first raise was lost still stops the work
        self.done = done
        self.total = max(total or self.total, done)
        now = time.perf_counter()
        elapsed = now - self.started
        finished = done >= self.total
        due = now - self.shown >= _REDRAW_SECONDS or finished
        if self.live and due and (self.drawn or elapsed >= self.quiet_seconds):
            filled = round(_BAR * done / self.total)
            bar = "#" * filled + "-" * (_BAR - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done:.0f}/{self.total:.0f} {self.unit} {elapsed:5.1f}s"
                              f"{self._left(elapsed)}")
            self.stream.flush()
            self.shown, self.drawn = now, True
        elif not self.live and now - self.shown >= _LOG_SECONDS and not finished:
            log.info("%s: %.0f/%.0f %s (%.0f%%)%s", self.label, done, self.total, self.unit,
                     100 * done / self.total, self._left(elapsed))
            self.shown = now

    def _left(self, elapsed: float) -> str:
        if not 0 < self.done < self.total:
            return ""
        seconds = round(elapsed * (self.total - self.done) / self.done)
        return f", {seconds // 60}m{seconds % 60:02d}s left" if seconds >= 60 else f", {seconds}s left"

    def close(self) -> None:
        """End the bar's line (once)."""
        if self.live and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False

