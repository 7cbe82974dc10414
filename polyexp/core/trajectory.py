"""A trajectory: what training a group of seeds leaves behind, and its ``.npz`` file format.

The same format serves the trajectory cache and the ``checkpoints.npz`` artifact of every run::

    import numpy as np
    npz = np.load("checkpoints.npz")
    npz["seeds"]                      # (S,) the seeds trained together
    npz["epochs"]                     # (K,) the window's epochs, member 1 (the latest) first
    npz["steps"]                      # (K,) the members' optimizer steps, for a window by steps only
    npz["weight_names"]               # (W,) the model's weight paths, e.g. "mlp/dense/kernel"
    npz["weight_0"]                   # (S, K, 2, 25): weight 0 of every seed's members, member 1 first
    npz["curve_epochs"]               # (C,) the epochs the learning curves were scored after
    npz["history_test_acc"]           # (S, C): the learning curves at those epochs
    npz["averages"]                   # names of the in-training averages, e.g. ["ema_0.999", "swa"]
    npz["average_swa_0"]              # (S, 2, 25): weight 0 of each seed's stochastic weight average
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyexp.core.data import SPLITS
from polyexp.core.files import atomic_write

HISTORY_KEYS = tuple(f"{split}_{metric}" for split in SPLITS for metric in ("acc", "loss"))


@dataclass
class Trajectory:
    """The window's checkpoints, the learning curves and the in-training averages of a seed group."""

    seeds: np.ndarray  # (S,)
    epochs: np.ndarray  # (K,) the window's epochs, member 1 (the latest) first: the epoch each member ends or is in
    names: list[str]  # the model's weight paths, in ``model.weights`` order
    checkpoints: list[np.ndarray]  # per weight: (S, K, *shape), member 1 first
    curve_epochs: np.ndarray  # (C,) the epochs the learning curves were scored after
    history: dict[str, np.ndarray]  # HISTORY_KEYS -> (S, C): the learning curves at those epochs
    averages: dict[str, list[np.ndarray]] = field(default_factory=dict)  # name -> per weight (S, *shape)
    steps: np.ndarray | None = None  # (K,) the members' optimizer steps (from 1); None: each at its epoch's end

    def seed_weights(self, s: int, member: int) -> list[np.ndarray]:
        """The weights of seed index ``s``'s member ``member`` (0 = the latest), in model order."""
        return [w[s, member] for w in self.checkpoints]


def write_trajectory(path: Path, trajectory: Trajectory, meta: Mapping[str, Any] | None = None) -> None:
    """Write ``trajectory`` (and ``meta``, stored as a JSON string) atomically as ``.npz``."""
    arrays: dict[str, Any] = {
        "seeds": trajectory.seeds,
        "epochs": trajectory.epochs,
        "curve_epochs": trajectory.curve_epochs,
        "weight_names": np.asarray(trajectory.names),
        "averages": np.asarray(list(trajectory.averages), dtype=str),
        "meta": np.asarray(json.dumps(dict(meta or {}))),
    }
    if trajectory.steps is not None:
        arrays["steps"] = trajectory.steps
    arrays.update({f"weight_{i}": w for i, w in enumerate(trajectory.checkpoints)})
    arrays.update({f"history_{name}": values for name, values in trajectory.history.items()})
    for name, weights in trajectory.averages.items():
        arrays.update({f"average_{name}_{i}": w for i, w in enumerate(weights)})
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def read_trajectory(path: Path) -> tuple[Trajectory, dict[str, Any]]:
    """The trajectory and the meta data in ``path``; raises on a missing key or a corrupt file."""
    with np.load(path, allow_pickle=False) as npz:
        names = [str(n) for n in npz["weight_names"]]
        trajectory = Trajectory(
            seeds=npz["seeds"],
            epochs=npz["epochs"],
            names=names,
            checkpoints=[npz[f"weight_{i}"] for i in range(len(names))],
            curve_epochs=npz["curve_epochs"],
            history={key.removeprefix("history_"): npz[key] for key in npz.files if key.startswith("history_")},
            averages={
                str(name): [npz[f"average_{name}_{i}"] for i in range(len(names))] for name in npz["averages"]
            },
            steps=npz["steps"] if "steps" in npz.files else None,
        )
        meta = _meta(npz)
    return trajectory, meta


def read_meta(path: Path) -> dict[str, Any]:
    """Only the meta data in ``path`` (what the entry was made with), no arrays loaded."""
    with np.load(path, allow_pickle=False) as npz:
        return _meta(npz)


def _meta(npz: Any) -> dict[str, Any]:
    return json.loads(str(npz["meta"]))
