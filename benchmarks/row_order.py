"""Benchmark: each epoch's row order from NumPy (``polyexp.core.shuffle``) against drawn in the graph.

    python benchmarks/row_order.py              # medians of --repeats interleaved rounds (default 7)
    python benchmarks/row_order.py --quick      # a smoke run: 100 epochs, 2 rounds, no target

Training takes every epoch's row order as an input, computed on the host by ``shuffle.orders`` for a
block of epochs and every seed at once. The alternative draws them inside the compiled loop,
``tf.argsort(tf.random.stateless_uniform([rows], seed=[s, e]))`` per seed and epoch, as training did
for one seed before. This script times ``train(...)`` of the default job (500 epochs, window of 10,
100 training rows; building the models and tracing included) for S = 1 and S = 10 seeds both ways,
in one process and in interleaved rounds (a slower minute of a shared machine slows both alike),
checks that both give the same trajectory, and prints the medians and the ratio of NumPy's orders
to the graph's. Target: within 5% for the default job. Then one seed on 10,000 training rows (500
epochs) and on 100,000 (50 epochs), where the orders cost the most, with ``--big-repeats`` rounds
(default 3; 0 skips them). ``orders`` alone, for all of a job's epochs at once, is timed too.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import polyexp  # noqa: F401 - first: its TensorFlow settings (quiet, oneDNN off) apply before TensorFlow loads

# isort: split
import keras
import numpy as np
import tensorflow as tf
from seeds import interleaved  # benchmarks/ is on the path when a script here runs

from polyexp.core import training
from polyexp.core.data import DATASETS
from polyexp.core.models import MODELS
from polyexp.core.optimizers import OPTIMIZERS
from polyexp.core.shuffle import orders
from polyexp.core.trajectory import Trajectory
from polyexp.core.window import spaced


class _OrdersInGraph(training._Loop):
    """The training loop with every seed's row order drawn inside the graph: called with a count of epochs."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        signature = [tf.TensorSpec((), tf.int32), tf.TensorSpec((), tf.int32)]
        self.run = tf.function(self._run_count, input_signature=signature, autograph=False)

    def _run_count(self, first: tf.Tensor, count: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return self._run(first, tf.zeros([count, len(self.seeds), 0], tf.int32))  # empty: only its length is read

    def _train_epoch(self, orders: tf.Tensor, epoch: tf.Tensor) -> tf.Tensor:
        drawn = [tf.argsort(tf.random.stateless_uniform(
            [self.rows], seed=tf.stack([tf.constant(s, tf.int64), tf.cast(epoch, tf.int64)]))) for s in self.seeds]
        return super()._train_epoch(tf.stack(drawn), epoch)


@contextmanager
def _orders_in_graph() -> Iterator[None]:
    """``train`` with the loop above; the host passes each call's number of epochs instead of the orders."""
    loop, host_orders = training._Loop, training.orders
    training._Loop, training.orders = _OrdersInGraph, lambda seeds, epochs, rows: np.int32(len(epochs))
    try:
        yield
    finally:
        training._Loop, training.orders = loop, host_orders


def train_default(seeds: int, epochs: int, rows: int = 100) -> Trajectory:
    keras.backend.clear_session()
    data = DATASETS["blobs"].bind({"n_samples": rows + 1000, "n_train": rows})()
    return training.train(lambda: MODELS["mlp"].bind({})(2, 3), OPTIMIZERS["sgd"].bind({}), data,
                          seeds=list(range(seeds)), epochs=epochs, batch_size=32, window=spaced(epochs, 10, 1))


def seconds(seeds: int, epochs: int, rows: int, in_graph: bool) -> float:
    started = time.perf_counter()
    if in_graph:
        with _orders_in_graph():
            train_default(seeds, epochs, rows)
    else:
        train_default(seeds, epochs, rows)
    return time.perf_counter() - started


def same(a: Trajectory, b: Trajectory) -> bool:
    return (all(np.array_equal(x, y) for x, y in zip(a.checkpoints, b.checkpoints, strict=True))
            and all(np.array_equal(a.history[k], b.history[k], equal_nan=True) for k in a.history))


def compare(jobs: dict[str, tuple[int, int, int]], repeats: int, target: str | None) -> None:
    """Each job (seeds, epochs, rows) both ways, interleaved: medians, and NumPy's time over the graph's."""
    median = interleaved(repeats, {
        (name, where): lambda job=job, w=where: seconds(*job, in_graph=w == "graph")
        for name, job in jobs.items() for where in ("graph", "numpy")
    })
    for name in jobs:
        graph, host = median[name, "graph"], median[name, "numpy"]
        verdict = "" if target != name else "  <= 1.05x  " + ("PASS" if host / graph <= 1.05 else "FAIL")
        print(f"  {name:<26} in the graph {graph:7.3f} s   from NumPy {host:7.3f} s   "
              f"NumPy / graph {host / graph:5.3f}x{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds of the default job (default 7)")
    parser.add_argument("--big-repeats", type=int, default=3, help="rounds of the big jobs (default 3, 0: none)")
    parser.add_argument("--quick", action="store_true", help="100 epochs, 2 rounds, no big jobs, no target")
    args = parser.parse_args()
    tf.get_logger().setLevel("ERROR")
    epochs, repeats, big_repeats = (100, 2, 0) if args.quick else (500, args.repeats, args.big_repeats)
    for group in (1, 10):
        with _orders_in_graph():
            drawn = train_default(group, epochs)
        print(f"S = {group}: the same trajectory both ways: {same(drawn, train_default(group, epochs))}")
    print(f"\nTraining the default job ({epochs} epochs, window 10, 100 training rows), medians of {repeats} "
          "interleaved rounds\n")
    default = f"S = 1, {epochs} epochs"
    compare({default: (1, epochs, 100), f"S = 10, {epochs} epochs": (10, epochs, 100)}, repeats,
            None if args.quick else default)
    big = {"S = 1, 10,000 rows, 500 ep.": (1, 500, 10_000), "S = 1, 100,000 rows, 50 ep.": (1, 50, 100_000)}
    if big_repeats:
        print(f"\nOne seed on more training rows, medians of {big_repeats} interleaved rounds\n")
        compare(big, big_repeats, None)
    print("\norders() alone, for all of a job's epochs at once (median of 5 calls)\n")
    for seeds, job_epochs, rows in ((1, epochs, 100), (10, epochs, 100), *([] if args.quick else big.values())):
        cost = statistics.median(_timed(orders, list(range(seeds)), np.arange(1, job_epochs + 1), rows)
                                 for _ in range(5))
        print(f"  S = {seeds:<3} {job_epochs:>4} epochs x {rows:>7,} rows   {cost * 1e3:8.2f} ms")


def _timed(call: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    call(*args)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
