"""polyexp: does averaging a network's late checkpoints give a better, steadier model?

Run ``python -m polyexp``; see README.md and docs/. The floors, each importing only from those below it:

- ``polyexp.core``: the registry, the settings and plugin groups (``data``, ``models``, ``optimizers``,
  ``window``, ``averaging``), training, scoring, statistics, a job's outcome and its identity; no MLflow.
- ``polyexp.run``: one job (runner, outputs, plots, trajectory cache, tracking).
- ``polyexp.sweep``: the sweeper and the sweep's parent run.
- the commands at the top: ``app`` (``python -m polyexp``), ``hydra_setup``, ``ui``, ``plugins``, ``cache``.
"""

import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines) says nothing actionable.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# oneDNN's kernels cost more to launch than the small models polyexp trains take to compute (docs/identity.md,
# "Identity"): off unless set, or unless the command scores your own checkpoint files (trajectory=files), whose
# models and data are of the size its kernels pay off for (benchmarks/own_run.py). It must be chosen before
# TensorFlow loads, so from the command line as given; it is part of every identity.
_OWN_CHECKPOINTS = any(arg.startswith("trajectory=") and "files" in arg for arg in sys.argv[1:])
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1" if _OWN_CHECKPOINTS else "0")
# Ray's launcher forwards the jobs' output, and by default folds lines that differ only in their numbers
# into one "[repeated Nx across cluster]": every job's results table but the first would vanish.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

__version__ = "0.1.0"
