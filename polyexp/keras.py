"""A Keras callback that keeps your own training's last epochs where ``trajectory=files`` reads them.

Add it to your own ``model.fit``; then score every averaging and n of those checkpoints, with no
retraining::

    from polyexp.keras import CheckpointWindow

    model.fit(x, y, epochs=100, callbacks=[CheckpointWindow("ckpt", size=10)])
    # ckpt/epoch_0091.keras ... ckpt/epoch_0100.keras, ckpt/checkpoint_window.json
    # python -m polyexp trajectory=files trajectory.glob='ckpt/*.keras' data=npz data.path=rows.npz

Epochs count from 1, as polyexp's do (``epoch_0100`` is the model after 100 epochs). Use a fresh
directory per run (``ckpt/seed_0``, ``ckpt/seed_1``, ... for several: ``trajectory.glob='ckpt/*/*.keras'``).

Beside the checkpoints, ``checkpoint_window.json`` records every epoch of the fit (not only the
kept ones): the optimizer's step count at the epoch's end (``optimizer.iterations``) and the learning
rate of the epoch's last step. polyexp's learning-curves plot draws the rate from it; for checkpoint
files without it (a plain ``ModelCheckpoint``), the plot says the rate is unknown.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import keras

from polyexp.core.files import write_text
from polyexp.core.trajectory_sources import RECORD, parse_record


class CheckpointWindow(keras.callbacks.Callback):
    """After every epoch, save the model as ``directory/epoch_NNNN.keras`` and keep only the last ``size``;
    record the epoch's optimizer step and learning rate in ``directory/checkpoint_window.json``.

    ``weights_only=True`` saves ``epoch_NNNN.weights.h5`` instead (smaller; polyexp then needs a
    ``model=`` plugin that builds the same network). Each file is written whole or not at all.

    The record keeps every epoch: a later ``fit`` on the same directory (``initial_epoch=...``)
    continues it, and replaces what it held from that epoch on. The rate recorded is the one the
    epoch's last step used: a ``LearningRateSchedule`` evaluated at that step, or the optimizer's rate
    variable. A callback that changes the rate at an epoch's end (``ReduceLROnPlateau``) must come
    after this one in ``callbacks``, or the next epoch's rate is recorded.
    """

    def __init__(self, directory: str | os.PathLike[str], size: int, *, weights_only: bool = False) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"size={size}: keep at least one epoch")
        self.directory = Path(directory)
        self.size = size
        self.suffix = ".weights.h5" if weights_only else ".keras"
        self.record: dict[int, dict[str, Any]] = {}  # epoch -> {"epoch", "step", "learning_rate"}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.record = _earlier_record(self.directory / RECORD)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        number = epoch + 1  # Keras counts epochs from 0
        step, rate = last_step(self.model.optimizer)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"epoch_{number:04d}{self.suffix}"
        temporary = self.directory / f".{path.name}.{os.getpid()}.tmp{self.suffix}"  # Keras wants the suffix
        try:
            if self.suffix == ".keras":
                self.model.save(temporary)
            else:
                self.model.save_weights(temporary)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        self.record = {e: entry for e, entry in self.record.items() if e < number}  # a restart replaces the rest
        self.record[number] = {"epoch": number, "step": step, "learning_rate": rate}
        write_text(self.directory / RECORD, record_text(self.record.values()))
        for old in self.directory.glob(f"epoch_*{self.suffix}"):
            kept = re.fullmatch(r"epoch_(\d+)", old.name.removesuffix(self.suffix))
            if kept and int(kept.group(1)) <= number - self.size:
                old.unlink(missing_ok=True)


def last_step(optimizer: keras.optimizers.Optimizer) -> tuple[int, float]:
    """The optimizer's step count (``iterations``) and the learning rate its last step used."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's own rate is a dummy 0
    step = int(keras.ops.convert_to_numpy(optimizer.iterations))
    # optimizer.learning_rate evaluates a schedule at ``iterations``, the *next* step; the step that just
    # ran was evaluated at iterations - 1.
    rate = optimizer._learning_rate
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        rate = rate(max(step - 1, 0))
    elif callable(rate):
        rate = rate()
    return step, float(keras.ops.convert_to_numpy(rate))


def record_text(entries: Iterable[dict[str, Any]]) -> str:
    """The record's JSON: one ``{"epoch", "step", "learning_rate"}`` per epoch, in epoch order."""
    lines = ",\n  ".join(json.dumps(entry) for entry in sorted(entries, key=lambda entry: entry["epoch"]))
    return f'{{"recorded_by": "polyexp.keras.CheckpointWindow", "epochs": [\n  {lines}\n]}}\n'


def _earlier_record(path: Path) -> dict[int, dict[str, Any]]:
    """The epochs an earlier fit recorded in ``path`` (none if it is missing; unreadable ones are replaced)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        record = parse_record(text)
    except ValueError as exc:
        warnings.warn(f"{path} is not a CheckpointWindow record ({exc}); it is started anew", stacklevel=2)
        return {}
    return {e: {"epoch": e, "step": s, "learning_rate": r}
            for e, s, r in zip(record.epochs, record.steps, record.rates, strict=True)}
