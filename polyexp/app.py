"""The command line: ``python -m polyexp [overrides] [-m]``, a Hydra app.

``cli`` checks the override keys, hands the command line to Hydra, which runs ``polyexp.task.main``
once or per job of a sweep, and ends a sweep's parent run when Hydra gives up early (a failed job,
Ctrl-C, SIGTERM). polyexp's errors are shown as Hydra shows its own: one line, no traceback (unless
``HYDRA_FULL_ERROR=1``).
"""

from __future__ import annotations

import signal
import sys

from polyexp.core.errors import ConfigError
from polyexp.hydra_setup import check_override_keys
from polyexp.run import secrets, stop
from polyexp.sweep.parent import close_sweeps, failed_sweeps
from polyexp.sweep.sweeper import sweep_fields_of_swept_groups
from polyexp.task import main


def cli() -> None:
    """``python -m polyexp``: run the Hydra app, then end any sweep Hydra left open.

    Exits 130 on Ctrl-C, 143 on SIGTERM, and 1 when a sweep ends FAILED (a job failed or left no report).
    """
    stop.on_signals({signal.SIGINT: stop.interrupted, signal.SIGTERM: stop.terminated})
    secrets.redact_output_if_secret(*sys.argv[1:])  # Hydra itself prints a failed job's overrides
    try:
        try:
            check_override_keys(sys.argv[1:])
        except ConfigError as exc:
            sys.exit(str(exc))  # one line, exit status 1, as Hydra shows a bad override
        sys.argv[1:] = sweep_fields_of_swept_groups(sys.argv[1:])
        main()  # polyexp's sweeper closes its sweep itself; close_sweeps ends one a foreign sweeper left
        stop.check()  # a Ctrl-C lost where it landed still ends the command as interrupted
    except KeyboardInterrupt:
        _interrupted()
    except stop.Terminated:
        close_sweeps(interrupted=True)
        raise
    except SystemExit:
        if isinstance(stop.requested(), KeyboardInterrupt):  # Hydra made an error of it: the Ctrl-C says why
            _interrupted()
        raise
    finally:
        close_sweeps()
    if failed_sweeps:
        sys.exit(1)


def _interrupted() -> None:
    close_sweeps(interrupted=True)
    print("interrupted", file=sys.stderr)
    sys.exit(130)
