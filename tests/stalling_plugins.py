"""An averaging that stalls inside a SLURM job while ``$POLYEXP_TEST_STALL`` is set: a job SLURM must stop.

Imported by the CLI through ``POLYEXP_PLUGINS=stalling_plugins``. The variable is no part of a job's
identity, so the same command without it finishes the very jobs that stalled.
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
