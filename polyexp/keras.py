"""A Keras callback that keeps your own training's last epochs where ``trajectory=files`` reads them.

Add it to your own ``model.fit``; then score every averaging and n of those checkpoints, with no
retraining::

    from polyexp.keras import CheckpointWindow

    model.fit(x, y, epochs=100, callbacks=[CheckpointWindow("ckpt", size=10)])
    # ckpt/epoch_0091.keras ... ckpt/epoch_0100.keras
    # python -m polyexp trajectory=files trajectory.glob='ckpt/*.keras' data=npz data.path=rows.npz

Epochs count from 1, as polyexp's do (``epoch_0100`` is the model after 100 epochs). Use a fresh
directory per run (``ckpt/seed_0``, ``ckpt/seed_1``, ... for several: ``trajectory.glob='ckpt/*/*.keras'``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import keras


class CheckpointWindow(keras.callbacks.Callback):
    """After every epoch, save the model as ``directory/epoch_NNNN.keras`` and keep only the last ``size``.

    ``weights_only=True`` saves ``epoch_NNNN.weights.h5`` instead (smaller; polyexp then needs a
    ``model=`` plugin that builds the same network). Each file is written whole or not at all.
    """

    def __init__(self, directory: str | os.PathLike[str], size: int, *, weights_only: bool = False) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"size={size}: keep at least one epoch")
        self.directory = Path(directory)
        self.size = size
        self.suffix = ".weights.h5" if weights_only else ".keras"

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        number = epoch + 1  # Keras counts epochs from 0
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
        for old in self.directory.glob(f"epoch_*{self.suffix}"):
            kept = re.fullmatch(r"epoch_(\d+)", old.name.removesuffix(self.suffix))
            if kept and int(kept.group(1)) <= number - self.size:
                old.unlink(missing_ok=True)
