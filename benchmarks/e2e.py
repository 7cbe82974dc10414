"""End to end: the README's sweep through the real CLI, wall time, against the import floor.

    python benchmarks/e2e.py               # 3 repeats of each case
    python benchmarks/e2e.py --repeats 5

Cases, each in a fresh folder per repeat:
  fresh store     no mlflow.db and an empty trajectory cache: the first command a new user runs
  new experiment  the store exists (a new experiment in it), the trajectory cache is empty
  cached          store and cache warm (skip_finished=false so every job runs and logs again)
The baseline, measured in the same run, is a bare ``python -c "import tensorflow, keras, mlflow,
sklearn, matplotlib, hydra"`` plus MLflow's SQLite store module: what any process that trains
with Keras and logs to SQLite pays before doing anything.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["averaging=exp", "averaging.alpha=1,2,4"]
IMPORTS = (
    "import tensorflow, keras, mlflow, sklearn.datasets, matplotlib.figure, hydra;"
    "import mlflow.store.tracking.sqlalchemy_store"
)


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "POLYEXP_"))}
    def cli(*extra: str) -> list[str]:
        return [sys.executable, "-m", "polyexp", *SWEEP, *extra, "-m"]

    times: dict[str, list[float]] = {"imports (baseline)": [], "fresh store": [], "new experiment": [],
                                     "cached": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        warm = root / "warm"
        warm.mkdir()
        warm_env = {**base_env, "POLYEXP_CACHE_DIR": str(warm / "cache")}
        timed(cli(), warm, warm_env)  # a store and a cache for the warm cases
        for i in range(repeats):
            times["imports (baseline)"].append(timed([sys.executable, "-c", IMPORTS], root, base_env))
            fresh = root / f"fresh{i}"
            fresh.mkdir()
            times["fresh store"].append(timed(cli(), fresh, {**base_env, "POLYEXP_CACHE_DIR": str(fresh / "c")}))
            new = root / f"new{i}"
            new.mkdir()
            shutil.copy(warm / "mlflow.db", new / "mlflow.db")
            new_env = {**base_env, "POLYEXP_CACHE_DIR": str(new / "c")}
            times["new experiment"].append(timed(cli(f"tracking.experiment=new{i}"), new, new_env))
            times["cached"].append(timed(cli("tracking.skip_finished=false"), warm, warm_env))
    floor = statistics.median(times["imports (baseline)"])
    print(f"python -m polyexp {' '.join(SWEEP)} -m: median wall time of {repeats} runs\n")
    print(f"{'case':<20} {'median':>8} {'minus imports':>14}")
    for case, values in times.items():
        median = statistics.median(values)
        extra = "" if case.startswith("imports") else f"{median - floor:13.1f}s"
        print(f"{case:<20} {median:7.1f}s {extra:>14}")


if __name__ == "__main__":
    main()
