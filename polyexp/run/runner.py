"""The runner: one job, from a checked config to a finished MLflow run.

It applies the pure computation (``polyexp.core.outcome``) to a run: fetch the trajectory through the
cache, compute, write the job's folder (``polyexp.run.outputs``), and only then log it all, so a
tracking failure loses nothing. Nothing here knows about Hydra; ``polyexp.task`` supplies the
:class:`~polyexp.run.job.Job`::

    plan, job = plan_from(cfg), Job(output_dir=Path("out"), launch_dir=Path.cwd())
    store = tracking.open_store(None, "polyexp", job.launch_dir)
    result = run_job(plan, plan.load_data(), job, store)
    result.selected_val_acc      # what a sweeper optimises: validation only
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence

import numpy as np

from polyexp.core.data import Dataset
from polyexp.core.errors import TrackingError, TrainingDiverged
from polyexp.core.identity import Identity, digest, job_identity, trajectory_identity
from polyexp.core.outcome import Outcome, Training, outcome_of, prepare_training
from polyexp.core.settings import Plan
from polyexp.core.training import configure_threads
from polyexp.core.trajectory import Trajectory
from polyexp.run import links, tracking
from polyexp.run.job import Job, JobResult, run_name, write_job_report
from polyexp.run.outputs import print_table, write_outputs
from polyexp.run.progress import Progress
from polyexp.run.secrets import redact
from polyexp.run.trajectory_cache import TrajectoryCache, cache_dir

log = logging.getLogger(__name__)


def run_job(
    plan: Plan, data: Dataset, job: Job, store: tracking.Store, identity: Identity | None = None
) -> JobResult:
    """Run one checked plan as an MLflow run: FINISHED, or FAILED / KILLED on the way out."""
    name = run_name(plan.averaging.name, job.overrides, job.sweep.swept_keys if job.sweep else None)
    identity = identity or job_identity(plan)
    log.info("%s: %s", job.label, name)
    tags = {
        tracking.TAG_PREFIX + "weighting": plan.averaging.name,
        tracking.TAG_PREFIX + "overrides": redact(" ".join(job.overrides)),
        tracking.TAG_PREFIX + "output_dir": str(job.output_dir),
        **{tracking.TAG_PREFIX + k: v for k, v in identity_tags(identity).items()},
        **tracking.git_commit(job.launch_dir),
    }
    if job.sweep is not None:
        tags[tracking.TAG_PREFIX + "sweep_dir"] = str(job.sweep.folder)
        tags[tracking.TAG_PREFIX + "job_num"] = str(job.number)
    client = store.client
    with tracking.tracked_run(store, name, tags, job.sweep.parent_run_id if job.sweep else None, job.stop) as run_id:
        tracking.log_params(client, run_id, tracking.parameters_of(plan.config))
        tags = _threads(plan, job)
        progress = Progress(plan.settings.epochs, f"{job.label} training", "epochs", stop=job.stop)
        scoring = Progress(1, f"{job.label} scoring", "weight sets", quiet_seconds=1.0, stop=job.stop)
        trajectory = trajectory_identity(plan)
        try:
            training = prepare_training(plan, data, on_progress=progress)
            fetched, reused = _trajectory(plan, trajectory, training)
            progress.close()
            outcome = outcome_of(training, fetched, reused=reused, on_progress=scoring)
        except TrainingDiverged as diverged:  # keep the curves up to the divergence
            tracking.log_metrics(client, run_id, per_epoch_rows(diverged.history, diverged.curve_epochs),
                                 tags={**tags, "diverged_epoch": str(diverged.epoch),
                                       "diverged_seed": str(diverged.seed)})
            raise
        finally:
            progress.close()
            scoring.close()
        source = "files" if plan.checkpoint_files else "reused" if outcome.reused else "trained"
        tags |= {"trajectory": source, "trajectory_key": trajectory.key, "test_rows": str(len(data.x_test))}
        log.info("%s: %s", job.label, _source_text(plan, outcome, source))
        try:
            write_outputs(job.output_dir, plan, data, outcome, name, identity,
                          shared=job.sweep.folder if job.sweep else None)
        except OSError:  # a full disk, mostly: the numbers still go to the store, which may have room
            with contextlib.suppress(TrackingError):  # the folder's error is the job's
                tracking.log_metrics(client, run_id, metric_rows(outcome), tags=tags)
            raise
        result = JobResult(
            "finished", name, list(job.overrides), run_id=run_id, trajectory=tags["trajectory"],
            summary=outcome.summary, test_average_acc=outcome.per_n["test_average_acc"].mean.tolist(),
            test_rows=len(data.x_test), number=job.position,
        )
        write_job_report(job.output_dir, result)  # the job's one report, logged with the run for a later skipped job
        tracking.log_metrics(client, run_id, metric_rows(outcome), tags=tags)
        tracking.log_folder(client, run_id, job.output_dir)
    print_table(outcome, f"{job.label}: {name}" if job.sweep is not None else None)
    if job.sweep is None:  # a sweep points at its parent run when it ends
        log.info("%s", links.view_hint(store.uri, store.experiment_id, run_id,
                                    experiment=plan.settings.tracking.experiment, launch_dir=job.launch_dir))
    return result


def identity_tags(identity: Identity) -> dict[str, str]:
    """What a run records of its identity: the keys, and what they were computed from, readable."""
    return {
        "job_key": identity.key,
        "config_hash": digest(identity.config),
        "code": identity.code_key,
        "libraries": ", ".join(f"{k} {v}" for k, v in identity.libraries.items()),
        "platform": ", ".join(f"{k} {v}" for k, v in identity.platform.items()),
    }


def metric_rows(outcome: Outcome) -> list[tuple[str, float, int]]:
    """Every number of the run as (key, value, step): per n (mean and interval over seeds), per epoch
    (mean over seeds) and the summary at step 0. Intervals are left out with one seed."""
    rows = []
    for key, estimate in outcome.per_n.items():
        for part, values in (("", estimate.mean), ("_ci_low", estimate.low), ("_ci_high", estimate.high)):
            rows += [(key + part, v, n) for n, v in enumerate(values, start=1) if np.isfinite(v)]
    rows += per_epoch_rows(outcome.trajectory.history, outcome.trajectory.curve_epochs)
    summary = dict(outcome.summary)
    if outcome.train_seconds is not None:
        summary["train_seconds"] = outcome.train_seconds
    return rows + [(key, float(value), 0) for key, value in summary.items() if np.isfinite(value)]


def per_epoch_rows(history: dict[str, np.ndarray], curve_epochs: Sequence[int]) -> list[tuple[str, float, int]]:
    """The learning curves, averaged over seeds: (key, value, epoch)."""
    return [(key, v, int(epoch)) for key, values in history.items()
            for epoch, v in zip(curve_epochs, np.mean(values, axis=0), strict=True)]


def _source_text(plan: Plan, outcome: Outcome, source: str) -> str:
    """Where the job's checkpoints came from, for the log."""
    if source == "files":
        files = plan.checkpoint_files
        runs = ", ".join(f"seed {s}: {folder or '.'}" for s, folder in enumerate(files.folders))
        return f"scored {len(files.epochs)} checkpoint files per run, epochs {files.epochs} ({runs})"
    if source == "reused":
        return "reused the cached trajectory"
    return (f"trained {len(outcome.seeds)} seed(s) x {plan.settings.epochs} epochs "
            f"in {outcome.train_seconds:.2f} s")


def _trajectory(plan: Plan, identity: Identity, training: Training) -> tuple[Trajectory | None, bool]:
    """(trajectory, reused): from the cache, else trained; None for the plan's own checkpoint files."""
    if plan.checkpoint_files is not None:
        return None, False
    cache = plan.settings.cache
    if not cache.enabled:
        return training(), False
    return TrajectoryCache(cache_dir(cache.dir)).fetch(identity, training)


def _threads(plan: Plan, job: Job) -> dict[str, str]:
    threads = plan.settings.threads or (
        max(1, (os.cpu_count() or 1) // job.workers) if job.workers > 1 else None)
    if not threads:
        return {}
    configure_threads(threads)  # parallel workers on one machine share its cores
    return {"threads": str(threads)}
