"""Stopping a job on a signal (Ctrl-C, SIGTERM, a cluster's notice) wherever the signal lands.

Python raises a signal handler's exception in whatever code runs at that moment. Where that is a
finaliser or a weakref callback, Python prints ``Exception ignored in ...`` and the job goes on, so
a Ctrl-C could be lost. The handler therefore also records the stop, and the job checks it at its
boundaries (every epoch, every job's start, the command's end)::

    on_signals({signal.SIGINT: interrupted})
    ...
    check()   # raises KeyboardInterrupt again if a Ctrl-C came, even one that was lost

Where a run must not be half made (created, but not yet known to the code that ends it), the stop
waits for the end of the block::

    with held():
        run_id = create_run(...)
        close_on_exit(end_the_run)
    # a Ctrl-C that came inside the block is raised here

How the command stopped decides its exit status, in one place (:func:`exit_status`), and what is still
open when it stops (a sweep's parent run, whose owner Hydra skipped) is closed on the way out
(:func:`close_on_exit`, :func:`close_all`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from types import FrameType

Stop = Callable[[], BaseException]

_requested: Stop | None = None
_raised: list[BaseException] = []  # what the handlers raised: where Python loses one, check() raises it again
_later = 0  # signals after the first
_holding = 0  # inside held(): a signal is recorded, and raised when the block ends
_open: list[Callable[[bool], object]] = []  # closers of what is still open: close(interrupted)


def on_signals(stops: Mapping[int, Stop]) -> None:
    """On each of these signals, raise ``stops[signum]()`` and remember it for :func:`check`.

    Only the first signal raises: a second must not break the clean-up the first started (closing runs,
    a sweep's summary), and SLURM sends SIGTERM more than once. A third Ctrl-C quits at once, leaving
    any run still RUNNING for the next command on the store to mark.
    """
    for signum, stop in stops.items():
        signal.signal(signum, _handler(stop))
    sys.unraisablehook = _quiet_when_lost


def _handler(stop: Stop) -> Callable[[int, FrameType | None], None]:
    def handle(signum: int, frame: FrameType | None) -> None:
        global _requested, _later
        if _requested is not None:
            _later += 1
            if signum == signal.SIGINT and _later == 1:
                print("interrupted: ending the runs first (Ctrl-C again to quit at once)", file=sys.stderr)
            elif signum == signal.SIGINT:
                print("quit: a run left RUNNING is marked by the next command on its store", file=sys.stderr)
                os._exit(128 + signal.SIGINT)
            return
        _requested = stop
        if _holding:
            return
        exc = stop()
        _raised.append(exc)
        raise exc

    return handle


def _quiet_when_lost(unraisable: sys.UnraisableHookArgs) -> None:
    """No ``Exception ignored in ...`` traceback for a stop Python lost: :func:`check` raises it again."""
    if not any(unraisable.exc_value is exc for exc in _raised):
        sys.__unraisablehook__(unraisable)


def interrupted() -> KeyboardInterrupt:
    """Ctrl-C's stop, with a message for the job's report and run."""
    return KeyboardInterrupt("interrupted (Ctrl-C)")


class Terminated(SystemExit):
    """SIGTERM, raised in the main thread so that runs, files and sweeps are closed on the way out."""


def terminated() -> Terminated:
    """SIGTERM's stop: exit status 143."""
    return Terminated(128 + signal.SIGTERM)


def requested() -> BaseException | None:
    """The stop a signal asked for, or None."""
    return _requested() if _requested is not None else None


@contextlib.contextmanager
def held() -> Iterator[None]:
    """A block a signal does not cut in two: its stop is raised when the block ends."""
    global _holding
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
    if not _holding:
        check()


def check() -> None:
    """Raise the stop a signal asked for, if one came (its first raise may have been lost)."""
    if _requested is not None:
        raise _requested()


def close_on_exit(close: Callable[[bool], object]) -> None:
    """Have :func:`close_all` call ``close(interrupted)`` unless :func:`closed` says it was closed first."""
    _open.append(close)


def closed(close: Callable[[bool], object]) -> None:
    """``close`` has run: nothing is left for :func:`close_all` to close."""
    with contextlib.suppress(ValueError):
        _open.remove(close)


def close_all(interrupted: bool) -> None:
    """Close what is still open, the latest first (a sweep whose owner Hydra skipped when it gave up)."""
    for close in reversed(list(_open)):
        close(interrupted)


def exit_status(exc: BaseException) -> int:
    """The command's exit status when ``exc`` ends it: 130 on Ctrl-C (also when Hydra made an error of it),
    143 on SIGTERM, a SystemExit's own status, else 1."""
    if isinstance(exc, KeyboardInterrupt) or (isinstance(exc, SystemExit) and isinstance(requested(),
                                                                                           KeyboardInterrupt)):
        return 128 + signal.SIGINT
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    return 1
