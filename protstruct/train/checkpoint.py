"""Epoch checkpoints: a job killed, preempted or timed out continues where it stopped.

At every epoch end the whole training state goes into one new folder, ``epoch-NNNN``: model and
optimizer variables (Keras' ``save_weights``), early stopping's best value, wait counter, best
epoch and best weights, and the epoch history. ``latest.json`` then points at it (written by
rename, so a kill at any moment leaves the previous complete checkpoint). Data order needs no
state: crops and shuffles derive from (seed, epoch) (``pipeline.train_dataset``).

Nothing here is code: weights in HDF5, arrays in ``.npz`` read with ``allow_pickle=False``,
everything else JSON.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import keras
import numpy as np

LATEST = "latest.json"
WEIGHTS = "model.weights.h5"
BEST_WEIGHTS = "best_weights.npz"
STATE = "state.json"


def latest(folder: Path) -> dict | None:
    """The newest complete checkpoint's state (with its folder), or None."""
    pointer = Path(folder) / LATEST
    if not pointer.is_file():
        return None
    name = json.loads(pointer.read_text())["dir"]
    if Path(name).name != name:
        raise ValueError(f"checkpoint {pointer}: {name!r} is not a folder name")
    state = json.loads((Path(folder) / name / STATE).read_text())
    return {**state, "dir": str(Path(folder) / name)}


def _number(value) -> float | None:
    return None if value is None else float(value)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the training state at each epoch end; restores it (after EarlyStopping's own reset,
    so it must come after the stopper in the callback list) when ``resume`` is a checkpoint."""

    def __init__(self, folder: Path, stopper: keras.callbacks.EarlyStopping, resume: dict | None = None):
        super().__init__()
        self.folder, self.stopper, self.resume = Path(folder), stopper, resume
        self.logs: list[dict] = list(resume["logs"]) if resume else []  # Keras' logs of each epoch

    def on_train_begin(self, logs=None):
        if not self.resume:
            return
        state, folder = self.resume, Path(self.resume["dir"])
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(folder / WEIGHTS)
        best = state["best"]
        self.stopper.best = None if best is None else float(best)
        self.stopper.wait, self.stopper.best_epoch = int(state["wait"]), int(state["best_epoch"])
        if (folder / BEST_WEIGHTS).is_file():
            with np.load(folder / BEST_WEIGHTS, allow_pickle=False) as saved:
                self.stopper.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        self.logs.append({k: float(v) for k, v in (logs or {}).items()})
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".epoch-{done:04d}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        self.model.save_weights(tmp / WEIGHTS)
        if self.stopper.best_weights is not None:
            np.savez(tmp / BEST_WEIGHTS, *self.stopper.best_weights)
        best = _number(self.stopper.best)
        state = {
            "epochs_done": done,
            "stopped": bool(self.model.stop_training),
            "best": best if best is None or math.isfinite(best) else None,
            "wait": int(self.stopper.wait),
            "best_epoch": int(self.stopper.best_epoch),
            "logs": self.logs,
        }
        (tmp / STATE).write_text(json.dumps(state))
        final = self.folder / f"epoch-{done:04d}"
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        pointer = self.folder / f".{LATEST}.{os.getpid()}.tmp"
        pointer.write_text(json.dumps({"dir": final.name}))
        os.replace(pointer, self.folder / LATEST)
        for old in self.folder.glob("epoch-*"):
            if old.name != final.name:
                shutil.rmtree(old, ignore_errors=True)
