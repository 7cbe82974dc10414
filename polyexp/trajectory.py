"""A trajectory: what one training run leaves behind, and its ``.npz`` file format.

The same format serves the trajectory cache and the ``checkpoints.npz`` artifact of every run::

    import numpy as np
    npz = np.load("checkpoints.npz")
    npz["epochs"]                     # (K,) the window's epochs, member 1 (the latest) first
    npz["weight_names"]               # (W,) the model's weight paths, e.g. "mlp/dense/kernel"
    npz["weight_0"]                   # (K, 2, 25): weight 0 of every member, member 1 first
    npz["history_test_acc"]           # (epochs,) the learning curve, index 0 = epoch 1
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polyexp.files import atomic_write

HISTORY_KEYS = ("train_acc", "train_loss", "test_acc", "test_loss")


@dataclass
class Trajectory:
    """The window's checkpoints and the learning curves of one training run."""

    epochs: np.ndarray  # (K,) the window's epochs, member 1 (the latest) first
    names: list[str]  # the model's weight paths, in ``model.weights`` order
    checkpoints: list[np.ndarray]  # per weight: (K, *shape), member 1 first
    history: dict[str, np.ndarray]  # HISTORY_KEYS -> (epochs,), index 0 = epoch 1


def write_trajectory(path: Path, trajectory: Trajectory, meta: Mapping[str, Any] | None = None) -> None:
    """Write ``trajectory`` (and ``meta``, stored as a JSON string) atomically as ``.npz``."""
    arrays: dict[str, Any] = {
        "epochs": trajectory.epochs,
        "weight_names": np.asarray(trajectory.names),
        "meta": np.asarray(json.dumps(dict(meta or {}))),
    }
    arrays.update({f"weight_{i}": w for i, w in enumerate(trajectory.checkpoints)})
    arrays.update({f"history_{name}": values for name, values in trajectory.history.items()})
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def read_trajectory(path: Path) -> tuple[Trajectory, dict[str, Any]]:
    """The trajectory and the meta data in ``path``; raises on a missing key or a corrupt file."""
    with np.load(path, allow_pickle=False) as npz:
        names = [str(n) for n in npz["weight_names"]]
        trajectory = Trajectory(
            epochs=npz["epochs"],
            names=names,
            checkpoints=[npz[f"weight_{i}"] for i in range(len(names))],
            history={key.removeprefix("history_"): npz[key] for key in npz.files if key.startswith("history_")},
        )
        meta = json.loads(str(npz["meta"]))
    return trajectory, meta
