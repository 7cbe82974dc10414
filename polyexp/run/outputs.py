"""A job's output folder: everything its run logs, written first, so a tracking failure loses nothing.

- ``config.yaml``: the resolved config; ``identity.json``: what decides the numbers (config fields,
  code fingerprints, libraries, platform; see ``polyexp.core.identity``);
- ``results.csv``: one row per seed and n: the member's epoch (and step, for a window by steps) and every
  per-n score (accuracy, loss and expected calibration error of single, average and ensemble on val and test);
- ``results_mean.csv``: one row per n: each per-n score's mean over seeds and 95% interval;
- ``summary.json``: the selection on validation and the headline numbers, with intervals;
- ``averages.csv``: one row per seed and in-training average (EMA, SWA), when there are any;
- ``history.csv``: one row per seed and epoch: the learning curves on every split;
- ``weights.json``: the normalised weights of every n, member 1 first (per seed for a selecting averaging);
- ``checkpoints.npz``: the trajectory (``polyexp.core.trajectory``'s format);
- ``averaged_model.keras``: the first seed's average of all K members (BatchNorm statistics recomputed);
- ``plots/``: ``data.png``, ``learning_curves.png``, ``accuracy_vs_n.png``, ``weights.png``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import OmegaConf

from polyexp.core.data import Dataset
from polyexp.core.files import atomic_write, naming, write_text
from polyexp.core.schedules import batches_per_epoch, factors
from polyexp.core.trajectory import write_trajectory
from polyexp.run.secrets import redact

if TYPE_CHECKING:  # not at run time: a sweep's summary writes its figure without TensorFlow
    from matplotlib.figure import Figure

    from polyexp.core.identity import Identity
    from polyexp.core.outcome import Outcome
    from polyexp.core.settings import Plan
    from polyexp.core.trajectory_sources import CheckpointFiles
    from polyexp.run.plots import LearningRates

METRICS = ("acc", "loss", "ece")  # every score's metrics: accuracy, cross-entropy, expected calibration error

def write_outputs(
    folder: Path, plan: Plan, data: Dataset, outcome: Outcome, name: str, identity: Identity,
    shared: Path | None = None,
) -> None:
    """Write every file of the job into ``folder`` (each one whole or not at all).

    With ``shared`` (a sweep's folder), the figures that only depend on the data or on the training
    (``data``, ``learning_curves``) are drawn once for the sweep and copied to its other jobs.
    """
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    trajectory, scores = outcome.trajectory, outcome.scores
    seeds, k = outcome.seeds, len(trajectory.epochs)
    write_text(folder / "config.yaml", redact(OmegaConf.to_yaml(plan.config)))
    write_text(folder / "identity.json", json.dumps(identity.describe(), indent=1, sort_keys=True))

    per_n_keys = [key for key, values in scores.items() if values.ndim == 2]
    at, at_names = [trajectory.epochs], ["epoch"]  # where each member is
    if trajectory.steps is not None:
        at, at_names = [trajectory.epochs, trajectory.steps], ["epoch", "step"]
    write_text(folder / "results.csv", csv_text(
        ["seed", "n", *at_names, *per_n_keys],
        ([seed, n + 1, *(a[n] for a in at), *(scores[key][s, n] for key in per_n_keys)]
         for s, seed in enumerate(seeds) for n in range(k)),
    ))
    write_text(folder / "results_mean.csv", csv_text(
        ["n", *(f"{key}{part}" for key in outcome.per_n for part in ("", "_ci_low", "_ci_high"))],
        ([n + 1, *(getattr(e, part)[n] for e in outcome.per_n.values() for part in ("mean", "low", "high"))]
         for n in range(k)),
    ))
    summary = {key: None if np.isnan(value) else value for key, value in outcome.summary.items()}  # JSON has no NaN
    write_text(folder / "summary.json", json.dumps(
        {"run": name, "weighting": plan.averaging.name, "seeds": seeds, **summary}, indent=1, default=float))
    if trajectory.averages:
        names = list(trajectory.averages)
        write_text(folder / "averages.csv", csv_text(
            ["seed", "average", *(f"{split}_{metric}" for split in ("val", "test") for metric in METRICS)],
            ([seed, average, *(scores[f"{split}_{average}_{metric}"][s] for split in ("val", "test")
                               for metric in METRICS)]
             for s, seed in enumerate(seeds) for average in names),
        ))
    history = trajectory.history
    write_text(folder / "history.csv", csv_text(
        ["seed", "epoch", *history],
        ([seed, epoch, *(values[s, c] for values in history.values())]
         for s, seed in enumerate(seeds) for c, epoch in enumerate(trajectory.curve_epochs)),
    ))
    write_text(folder / "weights.json", json.dumps(_weights_document(name, seeds, outcome.weights), indent=1))
    write_trajectory(folder / "checkpoints.npz", trajectory)
    _save_model(outcome, folder / "averaged_model.keras")

    from polyexp.run import plots  # matplotlib loads only where a job draws

    figures = {
        "data": lambda: plots.data_figure(data, plan.data.name),
        "learning_curves": lambda: plots.learning_curves_figure(
            history, trajectory.curve_epochs, trajectory.epochs.tolist(), _rates(plan, data), trajectory.steps),
        "accuracy_vs_n": lambda: plots.accuracy_figure(outcome.per_n, outcome.summary, name,
                                                       test_rows=len(data.x_test), seeds=len(seeds)),
        "weights": lambda: plots.weights_figure(
            outcome.weights[0], name if _shared(outcome.weights) else f"{name}, seed {seeds[0]}"),
    }
    shared_inputs = {
        "data": (plan.data.name, data.x_train, data.y_train, data.x_val, data.x_test, data.y_test),
        "learning_curves": (trajectory.curve_epochs, trajectory.epochs, *history, *history.values()),
    }
    for picture, draw in figures.items():
        path = folder / "plots" / f"{picture}.png"
        if shared is None or picture not in shared_inputs:
            write_png(path, draw())
            continue
        drawn = shared / f".{picture}-{_digest(shared_inputs[picture])}.png"  # hidden beside the jobs' folders
        if not drawn.exists():
            write_png(drawn, draw())
        with naming(path):
            shutil.copyfile(drawn, path)


def _digest(inputs: Iterable[Any]) -> str:
    """A digest of a figure's inputs: arrays by their bytes, anything else by its repr."""
    digest = hashlib.sha256()
    for item in inputs:
        is_array = isinstance(item, np.ndarray)
        digest.update(item.dtype.str.encode() + item.tobytes() if is_array else repr(item).encode())
    return digest.hexdigest()[:16]


def print_table(outcome: Outcome, title: str | None = None) -> None:
    """The seed's table (``> 1: single=0.814, ensemble=0.814``; its "ensemble" is the weight average,
    which a header line says), then the selection on validation; under ``title`` (a sweep's job name).
    It is printed in one write, so that the tables of parallel jobs never interleave.

    With several seeds, each number is the mean over seeds with its 95% interval; with a window by
    steps, each member's step follows n (``> 1 (step 2000): ...``). Where BatchNorm statistics are
    recomputed, the gain's reference (the last checkpoint scored as the averages are) is named.
    """
    per_n, summary = outcome.per_n, outcome.summary
    single, averaged = per_n["test_single_acc"], per_n["test_average_acc"]
    several = len(outcome.seeds) > 1
    steps = outcome.trajectory.steps
    lines = [f"{title}:"] if title else []
    if not several:
        lines.append("> n: test accuracy of the n-th latest checkpoint (single) and of the average of the n "
                     "latest's weights (ensemble, the tutorial's word; 'average' in results.csv and MLflow)")
    for n in range(len(single.mean)):
        label = f"{n + 1}" if steps is None else f"{n + 1} (step {steps[n]})"
        if several:
            lines.append(f"> {label}: single={interval_text(single[n])}, average={interval_text(averaged[n])}, "
                         f"gain={interval_text(per_n['test_gain_vs_last'][n], signed=True)}")
        else:
            lines.append(f"> {label}: single={single.mean[n]:.3f}, ensemble={averaged.mean[n]:.3f}")
    seeds = f"mean of {len(outcome.seeds)} seeds [95% CI]" if several else "one seed, no interval: set seeds=10"
    val, test = summary_interval(summary, "selected_val_acc"), summary_interval(summary, "selected_test_acc")
    reference = ""
    scores = outcome.scores
    if not np.array_equal(scores["test_single_loss"][:, 0], scores["test_average_loss"][:, 0]):
        reference = (f"; the last checkpoint as the averages are scored, its BatchNorm statistics recomputed: "
                     f"{averaged.mean[0]:.3f}, as saved: {single.mean[0]:.3f}")
    gain = summary_interval(summary, "selected_gain_vs_last", signed=True)
    lines.append(f"selected on validation: n={int(summary['selected_n'])}, val={val}; test={test}, gain over "
                 f"the last checkpoint={gain} ({seeds}{reference})")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _rates(plan: Plan, data: Dataset) -> LearningRates | str:
    """The learning rates the plot draws, or why it draws none: a trained run's rate at every optimizer
    step (when the optimizer has a fixed learning_rate to scale); for checkpoint files, what their own
    run recorded, never this config's optimizer."""
    from polyexp.run.plots import LearningRates

    if plan.checkpoint_files is not None:
        return _recorded_rates(plan.checkpoint_files)
    base = plan.optimizer.config.get("learning_rate")
    if base is None:
        return "learning rate: not a fixed number (the optimizer schedules it)"
    per_epoch = batches_per_epoch(len(data.x_train), plan.settings.batch_size)
    rates = base * factors(plan.plugins["schedule"], plan.settings.epochs, per_epoch)
    steps = np.arange(1, len(rates) + 1)
    return LearningRates(steps / per_epoch, rates, steps)


def _recorded_rates(files: CheckpointFiles) -> LearningRates | str:
    """The rate at each epoch's end that ``CheckpointWindow`` recorded beside the first run's files."""
    from polyexp.run.plots import LearningRates

    first = files.records[0] if files.records else None
    if first is None or not first.epochs:
        return "learning rate: unknown (the files' run recorded none; CheckpointWindow records it)"
    title = "the learning rate the run recorded"
    if any(record != first for record in files.records[1:]):
        title = f"the learning rate of the first run, {files.folders[0] or '.'} (the runs' records differ)"
    return LearningRates(np.asarray(first.epochs, dtype=float), np.asarray(first.rates, dtype=float),
                         np.asarray(first.steps), title)


def write_png(path: Path, figure: Figure) -> None:
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png")


def _save_model(outcome: Outcome, path: Path) -> None:
    temporary = path.with_name(f".{os.getpid()}.{path.name}")  # Keras insists on the suffix
    try:
        with naming(path):
            outcome.averaged_model.save(temporary)
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _weights_document(name: str, seeds: list[int], weights: np.ndarray) -> dict[str, Any]:
    def rows(matrix: np.ndarray) -> dict[str, list[float]]:
        return {str(n): matrix[n - 1, :n].tolist() for n in range(1, len(matrix) + 1)}

    if _shared(weights):
        return {"weighting": name, "weights": rows(weights[0])}
    return {"weighting": name, "weights_by_seed": {str(seed): rows(m) for seed, m in zip(seeds, weights, strict=True)}}


def _shared(weights: np.ndarray) -> bool:
    return bool(np.all(weights == weights[:1]))


def summary_interval(summary: dict[str, float], key: str, signed: bool = False) -> str:
    """``0.807 [0.803, 0.810]``: a summary value with its interval, if it has one."""
    nan = float("nan")
    return interval_text((summary[key], summary.get(f"{key}_ci_low", nan), summary.get(f"{key}_ci_high", nan)), signed)


def interval_text(estimate: Any, signed: bool = False) -> str:
    """An Estimate (or mean, low, high) as ``0.807 [0.803, 0.810]``; the mean alone without an interval."""
    mean, low, high = (estimate.mean, estimate.low, estimate.high) if hasattr(estimate, "mean") else estimate
    form = "+.3f" if signed else ".3f"
    if not np.isfinite(low):
        return f"{mean:{form}}"
    return f"{mean:{form}} [{low:{form}}, {high:{form}}]"


def csv_text(header: Sequence[str], rows: Iterable[Iterable[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([v.item() if isinstance(v, np.generic) else v for v in row] for row in rows)
    return buffer.getvalue()
