"""Two jobs of a sweep compared seed by seed: the paired difference of their averages' test accuracy.

    python benchmarks/paired.py multirun/DATE/TIME/0 multirun/DATE/TIME/1

For n = 1..K, the mean over seeds of (first job - second job) in ``test_average_acc``, with its 95%
interval (``polyexp.core.statistics.mean_ci``), read from each job's ``results.csv``; then the same for
the mean over n. Both jobs must have trained the same seeds.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from polyexp.core.statistics import mean_ci


def per_seed(folder: Path, key: str = "test_average_acc") -> tuple[list[int], np.ndarray]:
    rows = list(csv.DictReader((folder / "results.csv").read_text().splitlines()))
    seeds = sorted({int(r["seed"]) for r in rows})
    values = np.zeros((len(seeds), max(int(r["n"]) for r in rows)))
    for r in rows:
        values[seeds.index(int(r["seed"])), int(r["n"]) - 1] = float(r[key])
    return seeds, values


def main(first: str, second: str) -> None:
    seeds_a, a = per_seed(Path(first))
    seeds_b, b = per_seed(Path(second))
    if seeds_a != seeds_b:
        sys.exit(f"the jobs trained other seeds: {seeds_a} and {seeds_b}")
    print(f"test_average_acc, {Path(first).name} - {Path(second).name}, {len(seeds_a)} seeds (mean [95% CI])")
    difference = a - b
    for n in range(difference.shape[1]):
        d = mean_ci(difference[:, n])
        print(f"  n={n + 1:<3} {a[:, n].mean():.4f} - {b[:, n].mean():.4f} = "
              f"{d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}]")
    d = mean_ci(difference.mean(axis=1))
    print(f"  mean over n: {d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}]")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
