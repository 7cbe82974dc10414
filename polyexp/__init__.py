"""polyexp: does averaging a network's late checkpoints give a better, steadier model?

Run ``python -m polyexp``; see README.md and docs/. The floors, each importing only from those below it:

- ``polyexp.core``: the registry, the settings and plugin groups (``data``, ``models``, ``optimizers``,
  ``window``, ``averaging``), training, scoring, statistics, a job's outcome and its identity; no MLflow.
- ``polyexp.run``: one job (runner, outputs, plots, trajectory cache, tracking).
- ``polyexp.sweep``: the sweeper and the sweep's parent run.
- the commands at the top: ``app`` (``python -m polyexp``), ``hydra_setup``, ``ui``, ``plugins``, ``cache``.

Plugin authors import from here, the one stable place, whatever module a name lives in::

    from polyexp import AVERAGINGS, Gt

Each name loads its module when first asked for, so ``import polyexp`` stays light. The modules'
paths before the floors (``polyexp.models``, ``polyexp.averaging``, ...) still import, with a
FutureWarning naming the import to use (``polyexp.moved``).
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

# polyexp's own progress (training, scoring) says what matters; MLflow's bar for each small file it
# downloads (a resumed job's report) says nothing.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

__version__ = "0.1.0"

# What a plugin author imports: name -> the module that defines it.
PUBLIC = {
    **dict.fromkeys(("AVERAGINGS", "WEIGHTINGS", "Validation"), "polyexp.core.averaging"),
    **dict.fromkeys(("DATASETS", "Dataset", "make_dataset"), "polyexp.core.data"),
    "MODELS": "polyexp.core.models",
    "OPTIMIZERS": "polyexp.core.optimizers",
    "SCHEDULES": "polyexp.core.schedules",
    **dict.fromkeys(("WINDOWS", "StepWindow"), "polyexp.core.window"),
    **dict.fromkeys(("TRAJECTORIES", "CheckpointFiles"), "polyexp.core.trajectory_sources"),
    **dict.fromkeys(("Registry", "Gt", "Ge", "Lt", "Le", "File", "Affects"), "polyexp.core.registry"),
    **dict.fromkeys(("ConfigError", "PluginError"), "polyexp.core.errors"),
}
__all__ = sorted(PUBLIC)


def __getattr__(name: str) -> object:
    if name not in PUBLIC:
        raise AttributeError(f"module 'polyexp' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *PUBLIC])


from polyexp.moved import install as _install_moved  # noqa: E402 - after the environment is set

_install_moved()
