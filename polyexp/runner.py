"""The runner: one job, from a checked config to a finished MLflow run.

Train once (or reuse the cached trajectory), score every single checkpoint and every weighted
average of the n latest, write the results into the job's output folder, then log them. Nothing here
knows about Hydra; ``polyexp.app`` supplies the :class:`~polyexp.job.Job`::

    experiment, job = plan(cfg), Job(output_dir=Path("out"), launch_dir=Path.cwd())
    store = tracking.open_store(None, "polyexp", job.launch_dir)
    result = run_job(experiment, experiment.load_data(), job, store)
    result.ensemble_acc      # test accuracy of the average of the n latest checkpoints, n = 1..K
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from omegaconf import OmegaConf

from polyexp import plots, tracking
from polyexp.averaging import average, weight_matrix
from polyexp.cache import TrajectoryCache, default_cache_dir, training_key
from polyexp.config import Plan
from polyexp.data import Dataset
from polyexp.errors import TrainingDiverged
from polyexp.evaluation import Scorer, WindowScores, score_window
from polyexp.files import atomic_write, write_text
from polyexp.job import Job, JobResult, run_name
from polyexp.progress import EpochProgress
from polyexp.training import LOOP_VERSION, configure_threads, train
from polyexp.trajectory import Trajectory, write_trajectory

log = logging.getLogger(__name__)


def run_job(experiment: Plan, data: Dataset, job: Job, store: tracking.Store) -> JobResult:
    """Run one checked experiment as an MLflow run: FINISHED, or FAILED / KILLED on the way out."""
    name = run_name(experiment.strategy, job.overrides, job.sweep.swept_keys if job.sweep else None)
    log.info("%s: %s", job.label, name)

    client = store.client

    tags = {
        tracking.TAG_PREFIX + "strategy": experiment.strategy,
        tracking.TAG_PREFIX + "overrides": " ".join(job.overrides),
        tracking.TAG_PREFIX + "config_hash": experiment.config_hash,
        tracking.TAG_PREFIX + "output_dir": str(job.output_dir),
        **tracking.git_commit(job.launch_dir),
    }
    if job.sweep is not None:
        tags[tracking.TAG_PREFIX + "sweep_dir"] = str(job.sweep.folder)
        tags[tracking.TAG_PREFIX + "job_num"] = str(job.number)
    parent = job.sweep.parent_run_id if job.sweep else None
    with tracking.tracked_run(store, name, tags, parent_run_id=parent) as run_id:
        tracking.log_params(client, run_id, tracking.parameters_of(experiment.config))
        outcome = _compute(experiment, data, job, client, run_id)
        tracking.guarded(client.set_tag, run_id, tracking.TAG_PREFIX + "trajectory", outcome.trajectory)
        _write_outputs(job.output_dir, experiment, outcome, name)
        tracking.log_metrics(client, run_id, outcome.metrics())
        tracking.guarded(client.log_artifacts, run_id, str(job.output_dir))
    print_table(outcome.scores.single_acc, outcome.scores.ensemble_acc)
    return JobResult(
        "finished", name, list(job.overrides), run_id=run_id, trajectory=outcome.trajectory,
        single_acc=outcome.scores.single_acc.tolist(), ensemble_acc=outcome.scores.ensemble_acc.tolist(),
    )


def print_table(single: Sequence[float], ensemble: Sequence[float]) -> None:
    """The seed's table: ``> 1: single=0.814, ensemble=0.814``, one line per n."""
    for n, (s, e) in enumerate(zip(single, ensemble), start=1):
        print(f"> {n}: single={s:.3f}, ensemble={e:.3f}", flush=True)


@dataclass
class _Outcome:
    data: Dataset
    trajectory_obj: Trajectory
    matrix: np.ndarray
    scores: WindowScores
    averaged_model: keras.Model
    trajectory: str  # trained | reused
    train_seconds: float | None

    def metrics(self) -> list[tuple[str, float, int]]:
        """Every number of the run as (key, value, step): per n, per epoch, and summaries."""
        s, history = self.scores, self.trajectory_obj.history
        rows: list[tuple[str, float, int]] = []
        for key in ("single_acc", "single_loss", "ensemble_acc", "ensemble_loss"):
            rows += [(key, v, n) for n, v in enumerate(getattr(s, key), start=1)]
        rows += _series(history)
        best = int(np.argmax(s.ensemble_acc))
        summary = {
            "best_ensemble_acc": s.ensemble_acc[best],
            "best_ensemble_n": best + 1,
            "final_ensemble_acc": s.ensemble_acc[-1],
            "ensemble_gain": s.ensemble_acc[best] - s.single_acc[0],
            "last_epoch_test_acc": history["test_acc"][-1],
            "last_epoch_train_acc": history["train_acc"][-1],
            "single_acc_mean": float(np.mean(s.single_acc)),
            "single_acc_std": float(np.std(s.single_acc)),
            "ensemble_acc_mean": float(np.mean(s.ensemble_acc)),
            "ensemble_acc_std": float(np.std(s.ensemble_acc)),
        }
        if self.train_seconds is not None:
            summary["train_seconds"] = self.train_seconds
        return rows + [(key, value, 0) for key, value in summary.items()]


def _compute(experiment: Plan, data: Dataset, job: Job, client: Any, run_id: str) -> _Outcome:
    config = experiment.config
    threads = config["threads"] or (max(1, (os.cpu_count() or 1) // job.workers) if job.workers > 1 else None)
    if threads:
        configure_threads(threads)
    matrix = weight_matrix(experiment.weighting, len(experiment.window))  # a bad plugin fails before training
    keras.backend.clear_session()  # the jobs of a basic-launcher sweep share this process

    def build() -> Any:
        keras.utils.set_random_seed(config["seed"])
        return experiment.model(data.num_features, data.num_classes)

    seconds: list[float] = []

    def train_now() -> Any:
        model = build()
        progress = EpochProgress(config["epochs"], f"{job.label} training")
        started = time.perf_counter()
        try:
            trajectory = train(
                model, experiment.optimizer(), data, epochs=config["epochs"], batch_size=config["batch_size"],
                window=experiment.window, seed=config["seed"], on_progress=progress,
            )
        except TrainingDiverged as diverged:  # keep the curves up to the divergence
            tracking.guarded(client.set_tag, run_id, tracking.TAG_PREFIX + "diverged_epoch", str(diverged.epoch))
            tracking.log_metrics(client, run_id, _series(diverged.history))
            raise
        finally:
            progress.close()
        seconds.append(time.perf_counter() - started)
        log.info("%s: trained %d epochs in %.2f s", job.label, config["epochs"], seconds[0])
        return trajectory

    if config["cache"]["enabled"]:
        root = Path(config["cache"]["dir"]).expanduser() if config["cache"]["dir"] else default_cache_dir()
        key = training_key(experiment.training_config, LOOP_VERSION)
        trajectory, reused = TrajectoryCache(root).fetch(key, train_now)
        if reused:
            log.info("%s: reused the cached trajectory %s", job.label, key)
    else:
        trajectory, reused = train_now(), False

    model = build()
    scores = score_window(Scorer(model), trajectory, matrix, data)
    model.set_weights(average(trajectory.checkpoints, matrix[-1]))
    return _Outcome(data, trajectory, matrix, scores, model, "reused" if reused else "trained",
                    None if reused else seconds[0])


def _series(history: dict[str, np.ndarray]) -> list[tuple[str, float, int]]:
    return [(key, v, epoch) for key, values in history.items() for epoch, v in enumerate(values, start=1)]


def _write_outputs(folder: Path, experiment: Plan, outcome: _Outcome, name: str) -> None:
    """Everything the run logs, written first into the job's folder (kept if logging fails)."""
    folder.mkdir(parents=True, exist_ok=True)
    s, trajectory = outcome.scores, outcome.trajectory_obj
    write_text(folder / "config.yaml", OmegaConf.to_yaml(experiment.config))
    write_text(folder / "results.csv", _csv(
        ["n", "epoch", "single_acc", "single_loss", "ensemble_acc", "ensemble_loss"],
        zip(range(1, len(s.single_acc) + 1), trajectory.epochs.tolist(), s.single_acc, s.single_loss,
            s.ensemble_acc, s.ensemble_loss),
    ))
    history = trajectory.history
    write_text(folder / "history.csv", _csv(
        ["epoch", *history], zip(range(1, len(history["train_acc"]) + 1), *history.values())
    ))
    weights = {str(n): outcome.matrix[n - 1, :n].tolist() for n in range(1, len(outcome.matrix) + 1)}
    write_text(folder / "weights.json", json.dumps({"strategy": name, "weights": weights}, indent=1))
    write_trajectory(folder / "checkpoints.npz", trajectory)
    temporary = folder / f".{os.getpid()}.averaged_model.keras"  # Keras insists on the suffix
    outcome.averaged_model.save(temporary)
    os.replace(temporary, folder / "averaged_model.keras")

    plot_folder = folder / "plots"
    plot_folder.mkdir(exist_ok=True)
    figures = {
        "data": plots.data_figure(outcome.data, experiment.config["data"]["name"]),
        "learning_curves": plots.learning_curves_figure(history, trajectory.epochs.tolist()),
        "accuracy_vs_n": plots.accuracy_figure(s.single_acc, s.ensemble_acc, name),
        "weights": plots.weights_figure(outcome.matrix, name),
    }
    for figure_name, figure in figures.items():
        atomic_write(plot_folder / f"{figure_name}.png", lambda handle, f=figure: f.savefig(handle, format="png"))


def _csv(header: Sequence[str], rows: Any) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_plain(v) for v in row] for row in rows)
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
