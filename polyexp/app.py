"""The command line: ``python -m polyexp [overrides] [-m]``, a Hydra app.

``cli`` checks the command line, hands it to Hydra, which runs ``polyexp.task.main`` once or per job of
a sweep, and ends the command with one exit status for how it stopped (``Stop.exit_status``),
closing a sweep Hydra left open when it gave up (a failed job, Ctrl-C, SIGTERM). polyexp's errors are
one line, no traceback (unless ``HYDRA_FULL_ERROR=1``). The signals are handled from the command's
entry on (``polyexp.__main__``).
"""

from __future__ import annotations

import sys

from polyexp.core.errors import ConfigError
from polyexp.hydra_setup import check_command_line
from polyexp.run import secrets
from polyexp.run.command_line import parse
from polyexp.run.stop import Stop, process_stop
from polyexp.task import main


def cli(stop: Stop | None = None) -> None:
    """``python -m polyexp``: run the Hydra app; a sweep that ends FAILED (a job failed or left no report)
    exits 1, Ctrl-C 130, SIGTERM 143. ``stop`` is the process's, its signals installed by the entry."""
    stop = stop or process_stop()
    try:
        secrets.redact_output_if_secret(*sys.argv[1:])  # Hydra itself prints a failed job's overrides
        try:
            check_command_line(parse(sys.argv[1:]))
        except ConfigError as exc:
            sys.exit(str(exc))  # one line, exit status 1
        main()
        stop.check()  # a Ctrl-C lost where it landed still ends the command as interrupted
    except BaseException as exc:
        status = stop.exit_status(exc)
        stop.close_all(interrupted=status in (130, 143))
        if status == 130:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        raise
    finally:
        stop.close_all(interrupted=False)
