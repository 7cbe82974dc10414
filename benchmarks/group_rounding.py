"""Seeds trained as one group against the same seeds trained alone: how far rounding takes them apart.

    python benchmarks/group_rounding.py            # the default job, seeds 0..9

Each seed starts from the same weights and visits the rows in the same order in both cases; only the
vectorised kernels' rounding differs. Prints the largest difference of any weight of any window
checkpoint, and how many of the accuracies (single, average and ensemble on test, average on
validation; every seed and n) differ.
"""

from __future__ import annotations

import polyexp  # noqa: F401 - first: its TensorFlow settings (quiet, oneDNN off) apply before TensorFlow loads

# isort: split
import numpy as np
import tensorflow as tf

from polyexp.core.outcome import compute_outcome
from polyexp.core.settings import plan_from
from polyexp.hydra_setup import compose

KEYS = ("test_single_acc", "test_average_acc", "test_ensemble_acc", "val_average_acc")


def main(seeds: int = 10) -> None:
    tf.get_logger().setLevel("ERROR")
    group_plan = plan_from(compose([f"seeds={seeds}"]))
    data = group_plan.load_data()
    group = compute_outcome(group_plan, data)
    weight_gap, differing, compared = 0.0, 0, 0
    for s in range(seeds):
        alone = compute_outcome(plan_from(compose([f"seed={s}"])), data)
        for together, solo in zip(group.trajectory.checkpoints, alone.trajectory.checkpoints, strict=True):
            weight_gap = max(weight_gap, float(np.abs(together[s] - solo[0]).max()))
        for key in KEYS:
            differing += int(np.sum(group.scores[key][s] != alone.scores[key][0]))
            compared += group.scores[key].shape[1]
    print(f"seeds 0..{seeds - 1}, default job: largest weight difference {weight_gap:.2e}; "
          f"accuracies that differ: {differing} of {compared}")


if __name__ == "__main__":
    main()
