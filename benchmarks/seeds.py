"""Benchmark: seeds trained together, in-training averages, and a seed-group sweep against single seeds.

    python benchmarks/seeds.py              # medians of --repeats interleaved rounds (default 7)
    python benchmarks/seeds.py --quick      # a smoke run: fewer epochs and repeats, no targets

1. Training the default job (500 epochs, window of 10, 100 training rows) for a group of S = 1, 10
   and 100 seeds, tracing and building the S models included, in one process, in interleaved rounds
   (so that a slower minute of a shared machine slows every case alike): medians and the ratio to
   S = 1. Targets: S = 10 within 2x of S = 1, S = 100 within 10x.
2. The same job with two EMAs (0.99, 0.999) and SWA from epoch 400, against without: target 1.3x.
   With a learning-rate schedule (``schedule=cosine``, set every step): S = 10 within 2x of S = 1.
3. Whole commands, each in a fresh folder with an empty store and trajectory cache:
   ``python -m polyexp seeds=10 averaging=exp averaging.alpha=1,2,4 -m`` (3 jobs, one training of 10
   seeds) against the same numbers from single seeds, ``seed=range(0,10)`` (30 jobs, 10 trainings).
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
from collections.abc import Callable
from pathlib import Path

import polyexp  # noqa: F401 - first: its TensorFlow settings (quiet, oneDNN off) apply before TensorFlow loads

# isort: split
import keras
import tensorflow as tf

from polyexp.core.data import DATASETS
from polyexp.core.models import MODELS
from polyexp.core.optimizers import OPTIMIZERS
from polyexp.core.schedules import SCHEDULES
from polyexp.core.training import train
from polyexp.core.window import spaced

SWEEPS = {
    "seeds=10, 3 jobs": ["seeds=10", "averaging=exp", "averaging.alpha=1,2,4"],
    "seed=0..9, 30 jobs": ["seed=range(0,10)", "averaging=exp", "averaging.alpha=1,2,4"],
}


def train_seconds(seeds: int, epochs: int, **options: object) -> float:
    keras.backend.clear_session()
    data = DATASETS["blobs"].bind({})()
    started = time.perf_counter()
    train(lambda: MODELS["mlp"].bind({})(2, 3), OPTIMIZERS["sgd"].bind({}), data, seeds=list(range(seeds)),
          epochs=epochs, batch_size=32, window=spaced(epochs, 10, 1), curve_every=1 if seeds == 1 else 10,
          **options)
    return time.perf_counter() - started


def median_of(repeats: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(repeats))


def interleaved(repeats: int, cases: dict[str, Callable[[], float]]) -> dict[str, float]:
    """The median of each case over ``repeats`` rounds, each round running every case once."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, measure in cases.items():
            times[name].append(measure())
    return {name: statistics.median(values) for name, values in times.items()}


def command_seconds(args: list[str], folder: Path, store: Path) -> float:
    folder.mkdir()
    shutil.copy(store, folder / "mlflow.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "POLYEXP_"))}
    env["POLYEXP_CACHE_DIR"] = str(folder / "cache")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "polyexp", *args, "-m"], cwd=folder, env=env,
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return elapsed


def row(name: str, seconds: float, base: float | None = None, target: float | None = None,
        check: bool = True) -> str:
    ratio = f"{seconds / base:5.2f}x" if base else ""
    status = "" if target is None else (("PASS" if seconds / base <= target else "FAIL") if check else "-")
    goal = f"<= {target:g}x" if target else ""
    return f"  {name:<34}{seconds:8.2f} s  {ratio:>7}  {goal:>8}  {status}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--sweep-repeats", type=int, default=1, help="runs of each whole command (default 1)")
    parser.add_argument("--sweeps", action=argparse.BooleanOptionalAction, default=True,
                        help="time the whole commands too (default on)")
    parser.add_argument("--quick", action="store_true", help="100 epochs, 2 repeats, no sweeps, no targets")
    args = parser.parse_args()
    tf.get_logger().setLevel("ERROR")
    epochs, repeats = (100, 2) if args.quick else (500, args.repeats)
    check = not args.quick
    print(f"Training the default job ({epochs} epochs, window 10, 100 training rows), medians of {repeats} "
          "interleaved rounds\n")
    averages = {"ema_decays": [0.99, 0.999], "swa_start": min(400, epochs)}
    cosine = SCHEDULES["cosine"].bind({})
    median = interleaved(repeats, {
        "S = 1": lambda: train_seconds(1, epochs),
        "S = 10": lambda: train_seconds(10, epochs),
        "S = 100": lambda: train_seconds(100, epochs),
        "S = 1, EMA x2 + SWA": lambda: train_seconds(1, epochs, **averages),
        "S = 10, EMA x2 + SWA": lambda: train_seconds(10, epochs, **averages),
        "S = 1, cosine schedule": lambda: train_seconds(1, epochs, schedule=cosine),
        "S = 10, cosine schedule": lambda: train_seconds(10, epochs, schedule=cosine),
    })
    one, ten = median["S = 1"], median["S = 10"]
    print(row("S = 1", one))
    print(row("S = 10", ten, one, 2, check))
    print(row("S = 100", median["S = 100"], one, 10, check))
    print(row("S = 1, EMA x2 + SWA", median["S = 1, EMA x2 + SWA"], one, 1.3, check))
    print(row("S = 10, EMA x2 + SWA", median["S = 10, EMA x2 + SWA"], ten, 1.3, check))
    print(row("S = 1, cosine schedule", median["S = 1, cosine schedule"], one))
    print(row("S = 10, cosine schedule", median["S = 10, cosine schedule"], median["S = 1, cosine schedule"], 2,
              check))
    if args.quick or not args.sweeps:
        return
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = root / "empty.db"
        MlflowClient(f"sqlite:///{store}").search_experiments()  # the store's migrations, once
        seconds = {name: median_of(args.sweep_repeats, lambda a=sweep, n=name: command_seconds(
            a, root / f"{n.split(',')[0]}-{time.perf_counter_ns()}", store)) for name, sweep in SWEEPS.items()}
    single = seconds["seed=0..9, 30 jobs"]
    print(f"\nWhole commands (python -m polyexp ... averaging=exp averaging.alpha=1,2,4 -m), "
          f"medians of {args.sweep_repeats}, fresh cache\n")
    print(row("seed=0..9, 30 jobs", single))
    print(row("seeds=10, 3 jobs", seconds["seeds=10, 3 jobs"], single))


if __name__ == "__main__":
    main()
