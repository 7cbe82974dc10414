"""The runner: one job, from a checked config to a finished MLflow run.

Train once (or reuse the cached trajectory), score every single checkpoint and every weighted
average of the n latest, write the results into the job's output folder, and only then log them, so
a tracking failure loses nothing. Nothing here knows about Hydra; ``polyexp.app`` supplies the
:class:`~polyexp.job.Job`::

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from polyexp import plots, tracking, ui
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


@dataclass
class Outcome:
    """What a job computed, before any of it is logged."""

    data: Dataset
    trajectory: Trajectory
    matrix: np.ndarray  # row n-1: the normalised weights of the n latest members
    scores: WindowScores
    averaged_model: keras.Model  # the average of all K members
    tags: dict[str, str]
    trajectory_key: str  # the cache key: jobs that share it share the data and learning-curve plots
    train_seconds: float | None  # None when the trajectory came from the cache

    def metrics(self) -> list[tuple[str, float, int]]:
        """Every number of the run as (key, value, step): per n, per epoch, and summaries at step 0."""
        s, history = self.scores, self.trajectory.history
        rows = [(key, v, n) for key in ("single_acc", "single_loss", "ensemble_acc", "ensemble_loss")
                for n, v in enumerate(getattr(s, key), start=1)]
        rows += _per_epoch(history)
        best = int(np.argmax(s.ensemble_acc))
        summary = {
            "best_ensemble_acc": s.ensemble_acc[best],
            "best_ensemble_n": best + 1,
            "final_ensemble_acc": s.ensemble_acc[-1],
            "ensemble_gain": s.ensemble_acc[best] - s.single_acc[0],
            "last_epoch_test_acc": history["test_acc"][-1],
            "last_epoch_train_acc": history["train_acc"][-1],
            "single_acc_mean": np.mean(s.single_acc),
            "single_acc_std": np.std(s.single_acc),
            "ensemble_acc_mean": np.mean(s.ensemble_acc),
            "ensemble_acc_std": np.std(s.ensemble_acc),
        }
        if self.train_seconds is not None:
            summary["train_seconds"] = self.train_seconds
        return rows + [(key, float(value), 0) for key, value in summary.items()]


def run_job(experiment: Plan, data: Dataset, job: Job, store: tracking.Store) -> JobResult:
    """Run one checked experiment as an MLflow run: FINISHED, or FAILED / KILLED on the way out."""
    name = run_name(experiment.strategy, job.overrides, job.sweep.swept_keys if job.sweep else None)
    log.info("%s: %s", job.label, name)
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
    client = store.client
    with tracking.tracked_run(store, name, tags, job.sweep.parent_run_id if job.sweep else None) as run_id:
        tracking.log_params(client, run_id, tracking.parameters_of(experiment.config))
        try:
            outcome = compute(experiment, data, job)
        except TrainingDiverged as diverged:  # keep the curves up to the divergence
            tracking.log_tags(client, run_id, {"diverged_epoch": str(diverged.epoch)})
            tracking.log_metrics(client, run_id, _per_epoch(diverged.history))
            raise
        write_outputs(job.output_dir, experiment, outcome, name)
        tracking.log_tags(client, run_id, outcome.tags)
        tracking.log_metrics(client, run_id, outcome.metrics())
        tracking.guarded(client.log_artifacts, run_id, str(job.output_dir))
    print_table(outcome.scores.single_acc, outcome.scores.ensemble_acc)
    if job.sweep is None:  # a sweep points at its parent run when it ends
        log.info("%s", ui.view_hint(store.uri, store.experiment_id, run_id,
                                    experiment=experiment.config["tracking"]["experiment"], launch_dir=job.launch_dir))
    return JobResult(
        "finished", name, list(job.overrides), run_id=run_id, trajectory=outcome.tags["trajectory"],
        single_acc=outcome.scores.single_acc.tolist(), ensemble_acc=outcome.scores.ensemble_acc.tolist(),
    )


def compute(experiment: Plan, data: Dataset, job: Job) -> Outcome:
    """Weights, trajectory (trained or from the cache), scores and the averaged model of a job."""
    config = experiment.config
    tags: dict[str, str] = {}
    threads = config["threads"] or (max(1, (os.cpu_count() or 1) // job.workers) if job.workers > 1 else None)
    if threads:  # parallel workers on one machine share its cores
        configure_threads(threads)
        tags["threads"] = str(threads)
    matrix = weight_matrix(experiment.weighting, len(experiment.window))  # a bad plugin fails before training
    keras.backend.clear_session()  # the jobs of a basic-launcher sweep share this process
    seconds: list[float] = []

    def train_now() -> Trajectory:
        keras.utils.set_random_seed(config["seed"])
        model = experiment.model(data.num_features, data.num_classes)
        progress = EpochProgress(config["epochs"], f"{job.label} training")
        started = time.perf_counter()
        try:
            trajectory = train(
                model, experiment.optimizer(), data, epochs=config["epochs"], batch_size=config["batch_size"],
                window=experiment.window, seed=config["seed"], on_progress=progress,
            )
        finally:
            progress.close()
        seconds.append(time.perf_counter() - started)
        log.info("%s: trained %d epochs in %.2f s", job.label, config["epochs"], seconds[0])
        return trajectory

    key = training_key(experiment.training_config, LOOP_VERSION)
    if config["cache"]["enabled"]:
        root = Path(config["cache"]["dir"]).expanduser() if config["cache"]["dir"] else default_cache_dir()
        trajectory, reused = TrajectoryCache(root).fetch(key, train_now)
        if reused:
            log.info("%s: reused the cached trajectory %s", job.label, key)
    else:
        trajectory, reused = train_now(), False
    tags["trajectory"] = "reused" if reused else "trained"

    model, scorer = _scoring_model(experiment, data)
    scores = score_window(scorer, trajectory, matrix, data)
    model.set_weights(average(trajectory.checkpoints, matrix[-1]))
    return Outcome(data, trajectory, matrix, scores, model, tags, key, seconds[0] if seconds else None)


def print_table(single: Sequence[float], ensemble: Sequence[float]) -> None:
    """The seed's table: ``> 1: single=0.814, ensemble=0.814``, one line per n."""
    for n, (s, e) in enumerate(zip(single, ensemble, strict=True), start=1):
        print(f"> {n}: single={s:.3f}, ensemble={e:.3f}", flush=True)


def write_outputs(folder: Path, experiment: Plan, outcome: Outcome, name: str) -> None:
    """Everything the run logs, written into the job's folder first (it stays if logging fails).

    ``config.yaml`` (resolved), ``results.csv`` (per n), ``history.csv`` (per epoch),
    ``weights.json`` (the normalised weights for every n, member 1 first), ``checkpoints.npz``
    (polyexp.trajectory's format), ``averaged_model.keras`` (all K members averaged) and ``plots/``.
    """
    s, trajectory, matrix = outcome.scores, outcome.trajectory, outcome.matrix
    history = trajectory.history
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    write_text(folder / "config.yaml", OmegaConf.to_yaml(experiment.config))
    write_text(folder / "results.csv", _csv(
        ["n", "epoch", "single_acc", "single_loss", "ensemble_acc", "ensemble_loss"],
        zip(range(1, len(s.single_acc) + 1), trajectory.epochs.tolist(), s.single_acc, s.single_loss,
            s.ensemble_acc, s.ensemble_loss, strict=True),
    ))
    write_text(folder / "history.csv", _csv(
        ["epoch", *history], zip(range(1, len(history["train_acc"]) + 1), *history.values(), strict=True),
    ))
    weights = {str(n): matrix[n - 1, :n].tolist() for n in range(1, len(matrix) + 1)}
    write_text(folder / "weights.json", json.dumps({"strategy": name, "weights": weights}, indent=1))
    write_trajectory(folder / "checkpoints.npz", trajectory)
    temporary = folder / f".{os.getpid()}.averaged_model.keras"  # Keras insists on the suffix
    try:
        outcome.averaged_model.save(temporary)
        os.replace(temporary, folder / "averaged_model.keras")
    finally:
        temporary.unlink(missing_ok=True)

    pictures = {
        "data": lambda: plots.data_figure(outcome.data, experiment.config["data"]["name"]),
        "learning_curves": lambda: plots.learning_curves_figure(history, trajectory.epochs.tolist()),
    }
    for picture, draw in pictures.items():  # the same for every job of a trajectory: drawn once
        _write_png(folder / "plots" / f"{picture}.png", _drawn_once((outcome.trajectory_key, picture), draw))
    _write_png(folder / "plots" / "accuracy_vs_n.png", _png(plots.accuracy_figure(s.single_acc, s.ensemble_acc, name)))
    _write_png(folder / "plots" / "weights.png", _png(plots.weights_figure(matrix, name)))


# One entry each: the jobs of a basic-launcher sweep share a process, and most share a trajectory.
_scorer_memo: dict[str, tuple[keras.Model, Scorer]] = {}
_figure_memo: dict[tuple[str, str], bytes] = {}


def _scoring_model(experiment: Plan, data: Dataset) -> tuple[keras.Model, Scorer]:
    """A model of the job's architecture and its compiled scorer, reused while the architecture is."""
    key = json.dumps([experiment.config["model"], data.num_features, data.num_classes], sort_keys=True)
    if key not in _scorer_memo:
        _scorer_memo.clear()
        model = experiment.model(data.num_features, data.num_classes)
        _scorer_memo[key] = model, Scorer(model)
    return _scorer_memo[key]


def _drawn_once(key: tuple[str, str], draw: Any) -> bytes:
    if key not in _figure_memo:
        if len(_figure_memo) > 8:
            _figure_memo.clear()
        _figure_memo[key] = _png(draw())
    return _figure_memo[key]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _write_png(path: Path, png: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(png))


def _per_epoch(history: dict[str, np.ndarray]) -> list[tuple[str, float, int]]:
    return [(key, v, epoch) for key, values in history.items() for epoch, v in enumerate(values, start=1)]


def _csv(header: Sequence[str], rows: Iterable[Iterable[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([v.item() if isinstance(v, np.generic) else v for v in row] for row in rows)
    return buffer.getvalue()
