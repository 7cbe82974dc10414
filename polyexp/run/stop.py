"""How the command stops: one :class:`Stop` per process, its signals installed once at the command's entry.

Python raises a signal handler's exception in whatever code runs at that moment. Where that is a
finaliser or a weakref callback, Python prints ``Exception ignored in ...`` and the job goes on, so
a Ctrl-C could be lost. The stop therefore also records the signal, and the work checks it at its
boundaries (every epoch, every job's start, the command's end)::

    stop = process_stop()
    stop.on_signals({signal.SIGINT: interrupted, signal.SIGTERM: terminated})   # at the entry, once
    ...
    stop.check()   # raises KeyboardInterrupt again if a Ctrl-C came, even one that was lost

Where a run must not be half made (created, but not yet known to the code that ends it), the stop
waits for the end of the block::

    with stop.held():
        run_id = create_run(...)
        stop.close_on_exit(end_the_run)
    # a Ctrl-C that came inside the block is raised here

How the command stopped decides its exit status, in one place (:meth:`Stop.exit_status`), and what is
still open when it stops (a sweep's parent run, whose owner Hydra skipped) is closed on the way out
(:meth:`Stop.close_on_exit`, :meth:`Stop.close_all`).

The stop is handed to the code that needs it (a job's progress, its run, a sweep's parent); where
Hydra calls polyexp (the task, the sweeper, the callback, the SLURM launcher in its job) there is no
argument to hand it in, and :func:`process_stop` gives the process's own: signals are a process's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from types import FrameType

StopFactory = Callable[[], BaseException]  # what a signal raises: interrupted, terminated, ...


class Stop:
    """A process's stop: the signal that came (if any), blocks it may not cut, what to close on the way out."""

    def __init__(self) -> None:
        self._requested: StopFactory | None = None
        self._raised: list[BaseException] = []  # what the handlers raised: where Python loses one, check() raises it
        self._later = 0  # signals after the first
        self._holding = 0  # inside held(): a signal is recorded, and raised when the block ends
        self._open: list[Callable[[bool], object]] = []  # closers of what is still open: close(interrupted)

    def on_signals(self, stops: Mapping[int, StopFactory]) -> None:
        """On each of these signals, raise ``stops[signum]()`` and remember it for :meth:`check`.

        Only the first signal raises: a second must not break the clean-up the first started (closing runs,
        a sweep's summary), and SLURM sends SIGTERM more than once. A third Ctrl-C quits at once, leaving
        any run still RUNNING for the next command on the store to mark.
        """
        for signum, factory in stops.items():
            signal.signal(signum, self._handler(factory))
        sys.unraisablehook = self._quiet_when_lost

    def _handler(self, factory: StopFactory) -> Callable[[int, FrameType | None], None]:
        def handle(signum: int, frame: FrameType | None) -> None:
            if self._requested is not None:
                self._later += 1
                if signum == signal.SIGINT and self._later == 1:
                    print("interrupted: ending the runs first (Ctrl-C again to quit at once)", file=sys.stderr)
                elif signum == signal.SIGINT:
                    print("quit: a run left RUNNING is marked by the next command on its store", file=sys.stderr)
                    os._exit(128 + signal.SIGINT)
                return
            self._requested = factory
            if self._holding:
                return
            exc = factory()
            self._raised.append(exc)
            raise exc

        return handle

    def _quiet_when_lost(self, unraisable: sys.UnraisableHookArgs) -> None:
        """No ``Exception ignored in ...`` traceback for a stop Python lost: :meth:`check` raises it again."""
        if not any(unraisable.exc_value is exc for exc in self._raised):
            sys.__unraisablehook__(unraisable)

    def requested(self) -> BaseException | None:
        """The stop a signal asked for, or None."""
        return self._requested() if self._requested is not None else None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """A block a signal does not cut in two: its stop is raised when the block ends."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        if not self._holding:
            self.check()

    @contextlib.contextmanager
    def uninterrupted(self) -> Iterator[None]:
        """A write a signal does not cut in two (an SQLite transaction cut by KeyboardInterrupt keeps the
        store locked for the clean-up that follows): a stop that comes inside is raised when the block ends.
        Unlike :meth:`held`, a stop that came before is not raised again: the clean-up it started goes on."""
        came_before = self._requested is not None
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        if not self._holding and not came_before:
            self.check()

    def check(self) -> None:
        """Raise the stop a signal asked for, if one came (its first raise may have been lost)."""
        if self._requested is not None:
            raise self._requested()

    def close_on_exit(self, close: Callable[[bool], object]) -> None:
        """Have :meth:`close_all` call ``close(interrupted)`` unless :meth:`closed` says it was closed first."""
        self._open.append(close)

    def closed(self, close: Callable[[bool], object]) -> None:
        """``close`` has run: nothing is left for :meth:`close_all` to close."""
        with contextlib.suppress(ValueError):
            self._open.remove(close)

    def close_all(self, interrupted: bool) -> None:
        """Close what is still open, the latest first (a sweep whose owner Hydra skipped when it gave up)."""
        for close in reversed(list(self._open)):
            close(interrupted)

    def exit_status(self, exc: BaseException) -> int:
        """The command's exit status when ``exc`` ends it: 130 on Ctrl-C (also when Hydra made an error of
        it), 143 on SIGTERM, a SystemExit's own status, else 1."""
        if isinstance(exc, KeyboardInterrupt) or (
                isinstance(exc, SystemExit) and isinstance(self.requested(), KeyboardInterrupt)):
            return 128 + signal.SIGINT
        if isinstance(exc, SystemExit):
            return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        return 1


_PROCESS = Stop()


def process_stop() -> Stop:
    """This process's stop, for the code Hydra calls (which it cannot be handed to)."""
    return _PROCESS


def interrupted() -> KeyboardInterrupt:
    """Ctrl-C's stop, with a message for the job's report and run."""
    return KeyboardInterrupt("interrupted (Ctrl-C)")


class Terminated(SystemExit):
    """SIGTERM, raised in the main thread so that runs, files and sweeps are closed on the way out."""


def terminated() -> Terminated:
    """SIGTERM's stop: exit status 143."""
    return Terminated(128 + signal.SIGTERM)
