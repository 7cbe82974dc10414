"""Where a job's checkpoints come from (``trajectory=...``): trained here, or your own checkpoint files.

A trajectory plugin takes no call arguments and returns the :class:`CheckpointFiles` to score, or
None to train the seed group as configured (``trained``, the default). ``files`` scores checkpoints
you saved yourself (``polyexp.keras.CheckpointWindow`` saves them from your own ``model.fit``), with
no training: every averaging and n, on the chosen data, exactly as for a trained trajectory::

    python -m polyexp trajectory=files trajectory.glob='ckpt/*.keras'
    python -m polyexp trajectory=files trajectory.glob='ckpt/*.weights.h5' model=mlp   # weights only

- **Epochs.** A file's epoch is the number in its name, without the suffix: ``epoch_0012.keras`` is
  epoch 12. A name holding several numbers uses the one right after ``epoch`` (``run2-epoch_12``);
  a name with no number, or several and none after ``epoch``, is refused, as are two files of one
  epoch. The latest epoch is member 1.
- **Runs.** The files of one folder are one run; files in several folders (``ckpt/*/*.keras``) are
  several runs of the same architecture, scored as seeds (in the folders' sorted order, seed 0 first),
  and must hold the same epochs.
- **Architecture.** ``.keras`` files carry it: the first file's model scores them all (its output must
  be class probabilities, as a softmax gives). ``.weights.h5`` files hold weights only: the ``model``
  plugin builds the network. Files whose weights differ in shape are refused.

All of this is checked when the config is (the epochs from the names, the shapes with h5py), so bad
input fails in one line before anything is logged or loaded; the files' names and bytes are part of
the identity. ``read_checkpoints`` loads them with Keras, and scores the learning curves at the
files' epochs (each checkpoint with its own statistics, as training scores them).
"""

from __future__ import annotations

import glob as globbing
import io
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np

from polyexp.core.errors import ConfigError, PluginError
from polyexp.core.registry import File, Registry

if TYPE_CHECKING:
    import keras

    from polyexp.core.data import Dataset
    from polyexp.core.registry import BoundPlugin
    from polyexp.core.trajectory import Trajectory

TRAJECTORIES = Registry("trajectory")

SUFFIXES = (".keras", ".weights.h5")
FIELD = "trajectory.glob"


@dataclass(frozen=True)
class CheckpointFiles:
    """Checkpoint files of one or more runs of one architecture, at the same epochs."""

    pattern: str
    suffix: str  # ".keras" or ".weights.h5"
    epochs: list[int]  # the members' epochs, member 1 (the latest) first
    folders: list[str]  # one per run
    paths: list[list[str]]  # paths[run][member]


@TRAJECTORIES.register
def trained() -> None:
    """Train the seed group here (seeds, epochs, optimizer and window as configured)."""
    return None


@TRAJECTORIES.register
def files(*, glob: Annotated[str, File(glob=True)]) -> CheckpointFiles:
    """Your own checkpoints, no training: the .keras (or .weights.h5, with a model plugin) files the glob
    matches, ordered by the epoch number in their names; one run per folder."""
    return find_checkpoints(glob)


def find_checkpoints(pattern: str) -> CheckpointFiles:
    """The files ``pattern`` matches, grouped by folder and ordered by epoch, checked (see the module docstring)."""
    matches = sorted(globbing.glob(os.path.expanduser(pattern), recursive=True))
    matches = [path for path in matches if os.path.isfile(path)]
    if not matches:
        where = "" if os.path.isabs(pattern) else f" (relative to {Path.cwd()}, the folder polyexp was launched from)"
        raise ConfigError.field(FIELD, pattern, f"it matches no file{where}")
    suffixes = {next((s for s in SUFFIXES if path.endswith(s)), None) for path in matches}
    if None in suffixes or len(suffixes) > 1:
        odd = next(p for p in matches if not p.endswith(SUFFIXES)) if None in suffixes else "both kinds"
        raise ConfigError.field(FIELD, pattern, f"it matches {odd}; polyexp reads files of one kind, "
                                                "all .keras or all .weights.h5")
    (suffix,) = suffixes
    runs: dict[str, dict[int, str]] = {}
    for path in matches:
        run = runs.setdefault(os.path.dirname(path), {})
        epoch = epoch_of(Path(path).name.removesuffix(suffix), pattern)
        if epoch in run:
            raise ConfigError.field(FIELD, pattern, f"{run[epoch]} and {path} are both epoch {epoch}")
        run[epoch] = path
    folders = sorted(runs)
    epochs = sorted(runs[folders[0]], reverse=True)
    for folder in folders[1:]:
        if sorted(runs[folder], reverse=True) != epochs:
            raise ConfigError.field(FIELD, pattern, f"the runs in {folders[0] or '.'} and {folder} hold different "
                                                    f"epochs ({sorted(runs[folders[0]])} and {sorted(runs[folder])})")
    paths = [[runs[folder][epoch] for epoch in epochs] for folder in folders]
    _check_one_architecture([path for run in paths for path in run], pattern)
    return CheckpointFiles(pattern, suffix, epochs, folders, paths)


def epoch_of(stem: str, pattern: str = "") -> int:
    """The epoch in a file name without its suffix: its one number, or the one right after ``epoch``."""
    numbers = re.findall(r"\d+", stem)
    if len(numbers) != 1:
        numbers = re.findall(r"epoch[^0-9a-z]?(\d+)", stem, flags=re.IGNORECASE)
    if len(numbers) != 1:
        raise ConfigError.field(FIELD, pattern, f"the epoch of {stem!r} is ambiguous: name each file with one "
                                                "number, or put the epoch right after 'epoch' (epoch_0012.keras)")
    return int(numbers[0])


def _check_one_architecture(paths: Sequence[str], pattern: str) -> None:
    first = _weight_shapes(paths[0], pattern)
    for path in paths[1:]:
        if _weight_shapes(path, pattern) != first:
            raise ConfigError.field(FIELD, pattern, f"{paths[0]} and {path} are models of different architectures "
                                                    "(their weights differ in shape)")


def _weight_shapes(path: str, pattern: str) -> list[tuple[int, ...]]:
    """The shapes of a checkpoint's model weights (not its optimizer's), read with h5py: no TensorFlow."""
    import h5py

    try:
        if path.endswith(".keras"):
            with zipfile.ZipFile(path) as archive:
                source: object = io.BytesIO(archive.read("model.weights.h5"))
        else:
            source = path
        with h5py.File(source, "r") as weights:
            found: list[tuple[str, tuple[int, ...]]] = []
            weights.visititems(lambda name, item: found.append((name, item.shape))
                               if isinstance(item, h5py.Dataset) and not name.startswith("optimizer/") else None)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise ConfigError.field(FIELD, pattern, f"{path} is not a readable Keras checkpoint ({exc})") from None
    return sorted(shape for _, shape in found)


def read_checkpoints(
    checkpoints: CheckpointFiles, model_plugin: BoundPlugin, data: Dataset
) -> tuple[Trajectory, keras.Model]:
    """The files as a trajectory (learning curves scored at their epochs) and the model that scores them."""
    import keras

    from polyexp.core.evaluation import Scorer
    from polyexp.core.models import build_model
    from polyexp.core.trajectory import HISTORY_KEYS, Trajectory

    first = checkpoints.paths[0][0]
    try:
        model = (keras.saving.load_model(first, compile=False) if checkpoints.suffix == ".keras"
                 else build_model(model_plugin, data))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError.field(FIELD, checkpoints.pattern, f"{first} cannot be loaded: {exc}") from None
    rows, classes = tuple(model.input_shape[1:]), model.output_shape[-1]
    if rows != data.input_shape or classes != data.num_classes:
        raise ConfigError.field(FIELD, checkpoints.pattern, f"its model maps rows of shape {rows} to {classes} "
                                f"classes; the data has rows of shape {data.input_shape} and {data.num_classes}")
    runs = []
    for run in checkpoints.paths:
        members = []
        for path in run:
            try:
                model.load_weights(path)
            except (OSError, ValueError) as exc:
                raise PluginError(f"{FIELD}: {path} does not fit {model.name}: {exc}") from None
            members.append([np.asarray(w.numpy()) for w in model.weights])
        runs.append(members)
    s, k = len(runs), len(checkpoints.epochs)
    stacked = [np.stack([np.stack([member[i] for member in run]) for run in runs]) for i in range(len(model.weights))]
    flat = [w.reshape(s * k, *w.shape[2:]) for w in stacked]
    scorer = Scorer(model, data.x_train, recompute_bn=False)  # each checkpoint as it was saved
    history = {}
    for split in ("train", "val", "test"):
        accuracy, loss = scorer(flat, *data.split(split), averaged=False)
        history[f"{split}_acc"], history[f"{split}_loss"] = accuracy.reshape(s, k), loss.reshape(s, k)
    ascending = np.arange(k)[::-1]  # the curves run forward in time
    trajectory = Trajectory(
        seeds=np.arange(s, dtype=np.int64),
        epochs=np.asarray(checkpoints.epochs, dtype=np.int64),
        names=[w.path for w in model.weights],
        checkpoints=stacked,
        curve_epochs=np.asarray(checkpoints.epochs[::-1], dtype=np.int64),
        history={key: history[key][:, ascending] for key in HISTORY_KEYS},
    )
    return trajectory, model
