"""Averagings that hold a job at a moment a test chooses, imported by the CLI through
``POLYEXP_PLUGINS=stalling_plugins``:

- ``stalls`` stalls inside a SLURM job while ``$POLYEXP_TEST_STALL`` is set: a job SLURM must stop;
- ``gated`` waits, its run RUNNING, until the file ``$POLYEXP_TEST_GATE`` exists.

The variables are no part of a job's identity, so the same command without them finishes the very jobs.
"""

import os
import time

from polyexp.core.averaging import AVERAGINGS


@AVERAGINGS.register
def stalls(n: int, copy: int = 1) -> list[float]:
    """Equal weights; ``copy`` tells apart jobs that are otherwise the same."""
    if os.environ.get("POLYEXP_TEST_STALL") and "SLURM_JOB_ID" in os.environ:
        time.sleep(600)
    return [1.0] * n


@AVERAGINGS.register
def gated(n: int) -> list[float]:
    """Equal weights, once the file ``$POLYEXP_TEST_GATE`` exists (at most 300 s: a test that hangs fails)."""
    gate, deadline = os.environ.get("POLYEXP_TEST_GATE"), time.monotonic() + 300
    while gate and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [1.0] * n
