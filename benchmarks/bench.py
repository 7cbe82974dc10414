"""Benchmark: the seed tutorial's procedure against polyexp's, on the same job, in one process.

    python benchmarks/bench.py            # full run: medians, targets, scaling
    python benchmarks/bench.py --quick    # smoke run: tiny jobs, no targets

The ``seed`` path is the tutorial written with Keras 3: one ``fit(epochs=1)`` per epoch, the last K
models saved to ``.keras`` files, loaded back, and for n = 1..K a cloned model holding the equal
average of the n latest members is evaluated, as is the n-th member alone. The ``polyexp`` path
runs the same job through ``train`` and ``score_trajectory`` (which also scores the validation rows
and the output ensembles). Times are medians over the repeats.
"""

from __future__ import annotations

import argparse
import logging
import math
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polyexp  # noqa: F401 - first: its TensorFlow settings (quiet, oneDNN off) apply before TensorFlow loads

# isort: split
import keras
import numpy as np
from sklearn.datasets import make_blobs

from polyexp.core.averaging import AVERAGINGS, average, weight_matrix
from polyexp.core.data import DATASETS
from polyexp.core.evaluation import Scorer
from polyexp.core.models import MODELS
from polyexp.core.optimizers import OPTIMIZERS
from polyexp.core.outcome import score_trajectory
from polyexp.core.training import train
from polyexp.core.window import spaced

BATCH_SIZE = 32
TEST_ROWS = 1000  # make_blobs draws rows + TEST_ROWS samples; the rows after the training rows test

Times = dict[str, float]


@dataclass(frozen=True)
class Job:
    epochs: int
    k: int  # window size: the last k epochs are kept and averaged
    rows: int  # training rows

    @property
    def steps(self) -> int:
        return math.ceil(self.rows / BATCH_SIZE)


def seed_path(job: Job) -> Times:
    """The tutorial's procedure; times train+save (``fit``, ``save``), ``load`` and ``evaluate``."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    x, labels = make_blobs(
        n_samples=job.rows + TEST_ROWS, centers=3, n_features=2, cluster_std=2, random_state=2
    )
    y = keras.utils.to_categorical(labels)
    train_x, test_x, train_y, test_y = x[: job.rows], x[job.rows :], y[: job.rows], y[job.rows :]
    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Dense(25, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    times: Times = {"fit": 0.0, "save": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(job.epochs):
            started = time.perf_counter()
            model.fit(train_x, train_y, epochs=1, verbose=0)
            fitted = time.perf_counter()
            if i == 0:
                times["fit_first"] = fitted - started  # Keras traces its train step in the first fit
            if i >= job.epochs - job.k:
                model.save(folder / f"model_{i}.keras")
            times["fit"] += fitted - started
            times["save"] += time.perf_counter() - fitted
        started = time.perf_counter()
        saved = range(job.epochs - job.k, job.epochs)
        members = [keras.models.load_model(folder / f"model_{i}.keras") for i in saved]
        times["load"] = time.perf_counter() - started
    started = time.perf_counter()
    members.reverse()  # member 1 is the latest
    for n in range(1, job.k + 1):
        ensemble = _weight_ensemble(members[:n], [1.0 / n] * n)
        _, times["acc"] = ensemble.evaluate(test_x, test_y, verbose=0)
        members[n - 1].evaluate(test_x, test_y, verbose=0)
    times["evaluate"] = time.perf_counter() - started
    return times


def _weight_ensemble(members: Sequence[keras.Model], weights: Sequence[float]) -> keras.Model:
    """The tutorial's ``model_weight_ensemble``: np.average of every layer's arrays, in a clone."""
    averaged = [
        np.average(np.array([m.get_weights()[layer] for m in members]), axis=0, weights=weights)
        for layer in range(len(members[0].get_weights()))
    ]
    model = keras.models.clone_model(members[0])
    model.set_weights(averaged)
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def polyexp_path(job: Job) -> Times:
    """polyexp's ``train`` (tracing included), then ``score_trajectory`` cold, warm, and its math alone."""
    keras.backend.clear_session()
    data = DATASETS["blobs"].bind({"n_samples": job.rows + TEST_ROWS, "n_train": job.rows, "n_val": TEST_ROWS})()
    window = spaced(job.epochs, job.k, 1)
    started = time.perf_counter()
    trajectory = train(lambda: MODELS["mlp"].bind({})(2, 3), OPTIMIZERS["sgd"].bind({}), data, seeds=[0],
                       epochs=job.epochs, batch_size=BATCH_SIZE, window=window)
    times: Times = {"train": time.perf_counter() - started}
    averaging = AVERAGINGS["equal"].bind({})
    started = time.perf_counter()
    scorer = Scorer(MODELS["mlp"].bind({})(2, 3), data.x_train)  # a real job builds its scoring model too
    _, scores, _ = score_trajectory(scorer, trajectory, averaging, data)
    times["evaluate"] = time.perf_counter() - started
    started = time.perf_counter()
    score_trajectory(scorer, trajectory, averaging, data)
    times["warm"] = time.perf_counter() - started
    members = [w[0] for w in trajectory.checkpoints]
    times["math"] = _median_seconds(
        lambda: average(members, np.vstack([np.eye(job.k), weight_matrix(averaging, job.k)]))
    )
    times["acc"] = float(scores["test_average_acc"][0, -1])
    return times


def _median_seconds(call: Callable[[], object], calls: int = 50) -> float:
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def medians(path: Callable[[Job], Times], job: Job, repeats: int) -> Times:
    runs = [path(job) for _ in range(repeats)]
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def seed_estimate(base: Times, base_job: Job, job: Job) -> float:
    """Seconds of one seed run: the first fit, the others linear in steps; save to evaluate linear in K."""
    per_step = (base["fit"] - base["fit_first"]) / ((base_job.epochs - 1) * base_job.steps)
    per_member = (base["save"] + base["load"] + base["evaluate"]) / base_job.k
    return base["fit_first"] + per_step * (job.epochs * job.steps - base_job.steps) + per_member * job.k


def duration(seconds: float) -> str:
    unit, scale = next(((u, s) for u, s in (("s", 1.0), ("ms", 1e-3)) if seconds >= s), ("µs", 1e-6))
    return f"{seconds / scale:.3g} {unit}"


def ratio(slow: float, fast: float) -> str:
    return f"{slow / fast:.0f}x" if slow / fast >= 10 else f"{slow / fast:.1f}x"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print an aligned table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, ["-" * w for w in widths], *rows]:
        first, *rest = (str(cell) for cell in row)
        cells = [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        print("  ".join(cells).rstrip())
    print()


@dataclass(frozen=True)
class Plan:
    base: Job  # the job of the main table; its targets hold for the default 500/10/100 job
    wide: Job  # a wide window, for the evaluation target
    epochs: list[int]
    windows: list[int]
    rows: list[tuple[int, int]]  # (training rows, epochs): epochs are lowered for the largest


FULL = Plan(Job(500, 10, 100), Job(500, 200, 100), [500, 2000, 5000], [10, 100, 1000],
            [(100, 500), (10_000, 500), (100_000, 50)])
QUICK = Plan(Job(30, 4, 100), Job(30, 16, 100), [30, 45], [4, 16], [(100, 30), (1000, 30), (4000, 10)])


def main_table(plan: Plan, seed: Times, poly: Times, wide: Times, targets: bool) -> None:
    base, seed_train = plan.base, seed["fit"] + seed["save"]
    seed_total, poly_total = seed_train + seed["load"] + seed["evaluate"], poly["train"] + poly["evaluate"]
    train_ok = poly["train"] <= 1.0 and seed_train / poly["train"] >= 25
    table(["", "seed", "polyexp", "seed/polyexp", "target", "status"], [
        ["train (seed: + save K files)", duration(seed_train), duration(poly["train"]),
         ratio(seed_train, poly["train"]), "<= 1.0 s, >= 25x", verdict(train_ok) if targets else "-"],
        ["load K checkpoints", duration(seed["load"]), "-", "", "", ""],
        [f"evaluate K={base.k} (cold)", duration(seed["evaluate"]), duration(poly["evaluate"]),
         ratio(seed["evaluate"], poly["evaluate"]), "", ""],
        [f"evaluate K={base.k} (warm)", "-", duration(poly["warm"]), ratio(seed["evaluate"], poly["warm"]),
         "<= 50 ms", verdict(poly["warm"] <= 0.05) if targets else "-"],
        [f"evaluate K={plan.wide.k} (warm)", "-", duration(wide["warm"]), "", "<= 1 s",
         verdict(wide["warm"] <= 1.0) if targets else "-"],
        [f"averaging math K={base.k}", "-", duration(poly["math"]), "", "", ""],
        [f"averaging math K={plan.wide.k}", "-", duration(wide["math"]), "", "", ""],
        ["total (train, load, evaluate cold)", duration(seed_total), duration(poly_total),
         ratio(seed_total, poly_total), "", ""],
    ])


def scaling_table(
    plan: Plan, args: argparse.Namespace, seed: dict[Job, Times], poly: dict[Job, Times]
) -> None:
    """Vary epochs, window and training rows one at a time; run the seed where its estimate fits."""
    base = plan.base
    jobs = [("epochs", Job(e, base.k, base.rows)) for e in plan.epochs]
    jobs += [("window K", Job(max(base.epochs, k), k, base.rows)) for k in plan.windows]
    jobs += [("train rows", Job(epochs, base.k, rows)) for rows, epochs in plan.rows]
    lines = []
    for varies, job in jobs:
        if job not in poly:
            poly[job] = medians(polyexp_path, job, args.repeats)
        estimate = seed_estimate(seed[base], base, job)
        runs = min(args.seed_repeats, int(args.seed_budget // estimate))
        if job not in seed and runs > 0:
            seed[job] = medians(seed_path, job, runs)
        p = poly[job]
        if job in seed:
            s = seed[job]
            cells = [duration(s["fit"] + s["save"]), duration(s["load"] + s["evaluate"]),
                     ratio(s["fit"] + s["save"], p["train"])]
        else:
            cells = [f"skipped (est. {estimate:.0f} s)", "", ""]
        lowered = f" (epochs lowered from {base.epochs})" if job.epochs < base.epochs else ""
        lines.append([varies + lowered, str(job.epochs), str(job.k), f"{job.rows:,}", duration(p["train"]),
                      duration(p["evaluate"]), duration(p["warm"]), *cells])
    print(f"Scaling: medians of {args.repeats} polyexp runs and of at most {args.seed_repeats} seed runs "
          f"(as many as the estimate fits in --seed-budget {args.seed_budget:g} s)\n")
    table(["varies", "epochs", "K", "train rows", "polyexp train", "eval cold", "eval warm",
           "seed train+save", "seed load+eval", "train ratio"], lines)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each polyexp job (default 5)")
    parser.add_argument("--seed-repeats", type=int, default=3, help="runs of each seed job (default 3)")
    parser.add_argument("--scaling", action=argparse.BooleanOptionalAction, default=True,
                        help="print the scaling table (default on)")
    parser.add_argument("--seed-budget", type=float, default=120.0,
                        help="skip a seed run whose estimate exceeds this many seconds (default 120)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny jobs, no targets")
    args = parser.parse_args()
    if min(args.repeats, args.seed_repeats) < 1 or args.seed_budget <= 0:
        parser.error("--repeats and --seed-repeats must be >= 1, --seed-budget > 0")
    plan = QUICK if args.quick else FULL
    if args.quick:
        args.repeats, args.seed_repeats, args.seed_budget = min(args.repeats, 2), 1, min(args.seed_budget, 20)

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # each repeat traces anew: no retracing warnings
    started = time.perf_counter()
    base = plan.base
    poly = {job: medians(polyexp_path, job, args.repeats) for job in (base, plan.wide)}
    seed = {base: medians(seed_path, base, args.seed_repeats)}
    print(f"\nJob: {base.epochs} epochs, window K={base.k}, {base.rows} training rows, batch {BATCH_SIZE}; "
          f"medians of {args.seed_repeats} seed and {args.repeats} polyexp runs\n")
    main_table(plan, seed[base], poly[base], poly[plan.wide], targets=not args.quick)
    print(f"Test accuracy of the {base.k}-member average: "
          f"seed {seed[base]['acc']:.3f}, polyexp {poly[base]['acc']:.3f}\n")
    if args.scaling:
        scaling_table(plan, args, seed, poly)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"Peak memory (ru_maxrss): {peak:.0f} MiB; wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
