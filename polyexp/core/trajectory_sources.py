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
- **Learning rate.** ``CheckpointWindow`` also writes ``checkpoint_window.json`` in the run's folder:
  each epoch of the fit with the optimizer's step at its end and its last step's learning rate. It is
  read into :attr:`CheckpointFiles.records` (never scored: a glob such as ``ckpt/*`` skips it; one that
  cannot be read is refused), and the learning-curves plot draws the first run's rates from it.
  Without it the plot says the rate is unknown: polyexp's own optimizer config is not the files' run.

All of this is checked when the config is (the epochs from the names, the shapes with h5py), so bad
input fails in one line before anything is logged or loaded; the files' names and bytes are part of
the identity. ``read_checkpoints`` loads them with Keras, and scores the learning curves at the
files' epochs (each checkpoint with its own statistics, as training scores them).
"""

from __future__ import annotations

import glob as globbing
import io
import json
import math
import os
import re
import tempfile
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
RECORD = "checkpoint_window.json"  # polyexp.keras.CheckpointWindow's record, beside a run's checkpoints


@dataclass(frozen=True)
class TrainingRecord:
    """What ``CheckpointWindow`` recorded of one run, per epoch in ascending order: the optimizer's step
    count at the epoch's end and the learning rate of the epoch's last step."""

    epochs: tuple[int, ...]
    steps: tuple[int, ...]
    rates: tuple[float, ...]


@dataclass(frozen=True)
class CheckpointFiles:
    """Checkpoint files of one or more runs of one architecture, at the same epochs."""

    pattern: str
    suffix: str  # ".keras" or ".weights.h5"
    epochs: list[int]  # the members' epochs, member 1 (the latest) first
    folders: list[str]  # one per run
    paths: list[list[str]]  # paths[run][member]
    records: tuple[TrainingRecord | None, ...] = ()  # per run: its folder's record; None where it has none


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
    matches = [path for path in matches if os.path.isfile(path) and os.path.basename(path) != RECORD]
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
    records = tuple(_read_record(os.path.join(folder, RECORD), pattern) for folder in folders)
    return CheckpointFiles(pattern, suffix, epochs, folders, paths, records)


def parse_record(text: str) -> TrainingRecord:
    """A ``checkpoint_window.json`` as written by ``CheckpointWindow``; ValueError saying what is wrong."""
    try:
        entries = json.loads(text)["epochs"]
        rows = sorted((int(e["epoch"]), int(e["step"]), float(e["learning_rate"])) for e in entries)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not the JSON CheckpointWindow writes: {type(exc).__name__}: {exc}") from None
    if len({e for e, _, _ in rows}) != len(rows) or any(e < 1 or s < 0 or not math.isfinite(r) for e, s, r in rows):
        raise ValueError("it needs one entry per epoch, epochs from 1, steps >= 0 and finite learning rates")
    return TrainingRecord(*(tuple(zip(*rows, strict=True)) or ((), (), ())))


def _read_record(path: str, pattern: str) -> TrainingRecord | None:
    """The record in ``path``, None if there is none; a ConfigError naming the glob if it cannot be read."""
    try:
        with open(path) as handle:
            return parse_record(handle.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # ValueError: also bytes that are not text
        raise ConfigError.field(FIELD, pattern, f"{path} is not a readable CheckpointWindow record ({exc}); "
                                                "delete it to score the files without their learning rates") from None


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
    first = _layer_shapes(paths[0], pattern)
    for path in paths[1:]:
        difference = layout_difference(first, _layer_shapes(path, pattern))
        if difference:
            raise ConfigError.field(FIELD, pattern, f"{paths[0]} and {path} are models of different architectures: "
                                                    f"{difference.format(paths[0], path)}")


LayerShapes = dict[str, list[tuple[int, ...]]]  # a layer's place in the file -> its weights' shapes, in order


@dataclass(frozen=True)
class LayoutDifference:
    """The first layer whose weights differ between two checkpoint layouts."""

    layer: str
    one: list[tuple[int, ...]] | None  # None: the layer is missing
    other: list[tuple[int, ...]] | None

    def format(self, one: str, other: str) -> str:
        def held(shapes: list[tuple[int, ...]] | None, where: str) -> str:
            return f"no such layer in {where}" if shapes is None else f"{_shapes_text(shapes)} in {where}"

        return f"layer {self.layer} holds {held(self.one, one)}, {held(self.other, other)}"


def layout_difference(one: LayerShapes, other: LayerShapes) -> LayoutDifference | None:
    """The first layer (by name) whose weight shapes differ, or None when the layouts are the same."""
    for layer in sorted(one.keys() | other.keys()):
        if one.get(layer) != other.get(layer):
            return LayoutDifference(layer, one.get(layer), other.get(layer))
    return None


def _shapes_text(shapes: list[tuple[int, ...]]) -> str:
    return ", ".join(str(shape) for shape in shapes)


def _layer_shapes(path: str | io.BytesIO, pattern: str) -> LayerShapes:
    """Each layer's weight shapes in a checkpoint (not its optimizer's), read with h5py: no TensorFlow.

    Keras keeps a layer's weights as ``layers/<layer>/vars/<i>``; the layer is named as Keras' saving
    names it (by class, numbered within the model), so files of one architecture name them alike.
    """
    import h5py

    try:
        if isinstance(path, str) and path.endswith(".keras"):
            with zipfile.ZipFile(path) as archive:
                source: object = io.BytesIO(archive.read("model.weights.h5"))
        else:
            source = path
        with h5py.File(source, "r") as weights:
            found: list[tuple[str, int, tuple[int, ...]]] = []

            def visit(name: str, item: object) -> None:
                if isinstance(item, h5py.Dataset) and not name.startswith("optimizer/"):
                    layer, _, index = name.rpartition("/")
                    found.append((layer.removesuffix("/vars").removeprefix("layers/"),
                                  int(index) if index.isdigit() else 0, tuple(item.shape)))

            weights.visititems(visit)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise ConfigError.field(FIELD, pattern, f"{path} is not a readable Keras checkpoint ({exc})") from None
    layers: LayerShapes = {}
    for layer, _, shape in sorted(found):
        layers.setdefault(layer, []).append(shape)
    return layers


def check_fit(checkpoints: CheckpointFiles, model_plugin: BoundPlugin, data: Dataset) -> None:
    """Refuse, in one line, checkpoint files whose model does not fit ``data`` (rows, classes) or, for
    ``.weights.h5`` files, the network the ``model`` plugin builds (the first layer that differs, both
    shapes). Runs when the data is loaded, before any run exists."""
    model = _scoring_model(checkpoints, model_plugin, data)
    first = checkpoints.paths[0][0]
    rows, classes = tuple(model.input_shape[1:]), model.output_shape[-1]
    if rows != data.input_shape or classes != data.num_classes:
        raise ConfigError.field(FIELD, checkpoints.pattern, f"{first}'s model maps rows of shape {rows} to {classes} "
                                f"classes; the data has rows of shape {data.input_shape} and {data.num_classes} "
                                "classes")
    if checkpoints.suffix == ".keras":
        return  # the first file's own model, and every file of its architecture (find_checkpoints)
    with tempfile.TemporaryDirectory() as folder:
        built = os.path.join(folder, "model.weights.h5")
        model.save_weights(built)
        difference = layout_difference(_layer_shapes(first, checkpoints.pattern),
                                       _layer_shapes(built, checkpoints.pattern))
    if difference:
        raise ConfigError.field(FIELD, checkpoints.pattern, f"{first} does not fit {model_plugin.label}'s network: "
                                f"{difference.format('the file', 'the network')}")


def _scoring_model(checkpoints: CheckpointFiles, model_plugin: BoundPlugin, data: Dataset) -> keras.Model:
    """The model that scores the files: the first ``.keras`` file's own, or the ``model`` plugin's network."""
    import keras

    from polyexp.core.models import build_model

    first = checkpoints.paths[0][0]
    try:
        if checkpoints.suffix == ".keras":
            return keras.saving.load_model(first, compile=False)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError.field(FIELD, checkpoints.pattern, f"{first} cannot be loaded: {exc}") from None
    return build_model(model_plugin, data)


def read_checkpoints(
    checkpoints: CheckpointFiles, model_plugin: BoundPlugin, data: Dataset
) -> tuple[Trajectory, keras.Model]:
    """The files as a trajectory of checkpoints (learning curves not yet scored: ``history`` empty) and
    the model that scores them; the files are read one at a time into that one model (:func:`check_fit`
    has checked that they fit)."""
    from polyexp.core.trajectory import Trajectory

    model = _scoring_model(checkpoints, model_plugin, data)
    s, k = len(checkpoints.paths), len(checkpoints.epochs)
    stacked = [np.empty((s, k, *w.shape), w.dtype) for w in model.weights]
    for run, paths in enumerate(checkpoints.paths):
        for member, path in enumerate(paths):
            try:
                model.load_weights(path)
            except (OSError, ValueError) as exc:
                raise PluginError(f"{FIELD}: {path} does not fit {model.name}: {exc}") from None
            for values, weight in zip(stacked, model.weights, strict=True):
                values[run, member] = weight.numpy()
    trajectory = Trajectory(
        seeds=np.arange(s, dtype=np.int64),
        epochs=np.asarray(checkpoints.epochs, dtype=np.int64),
        names=[w.path for w in model.weights],
        checkpoints=stacked,
        curve_epochs=np.asarray(checkpoints.epochs[::-1], dtype=np.int64),
        history={},
    )
    return trajectory, model
