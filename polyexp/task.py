"""One Hydra job: the task function Hydra runs once for ``python -m polyexp``, once per job under ``-m``.

Importing this module registers polyexp's configs with Hydra, so a launcher that runs the task in
another process (joblib, Ray, SLURM) finds them there too. The config and the data are checked before
TensorFlow or MLflow load, so a bad value fails in about a second; polyexp's errors end a single run in
one line (``polyexp.run.command_line.refusal``) and fail a sweep's job as Hydra fails one. Every job
leaves a report in its output folder for the sweep summary.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from polyexp.core.averaging import AVERAGINGS
from polyexp.core.errors import PolyexpError, full_disk
from polyexp.core.settings import plan_from
from polyexp.hydra_setup import config_path, register_configs
from polyexp.run import secrets
from polyexp.run.command_line import refusal
from polyexp.run.job import Job, JobResult, run_name, write_job_report
from polyexp.run.quiet import import_tensorflow
from polyexp.run.stop import Terminated, process_stop
from polyexp.sweep.parent import read_sweep

log = logging.getLogger(__name__)

try:
    register_configs()
except PolyexpError as exc:  # a POLYEXP_PLUGINS module that does not import: one line, as Hydra shows errors
    raise SystemExit(str(exc)) from None


@hydra.main(version_base="1.3", config_path=config_path(), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """One Hydra job; returns its validation score (what an optimising sweeper maximises)."""
    process_stop().check()  # a Ctrl-C that an earlier job of the sweep lost stops the sweep here
    return run_or_skip(cfg, current_job()).selected_val_acc


def run_or_skip(cfg: DictConfig, job: Job) -> JobResult:
    """One job of a composed config: skipped (an earlier FINISHED run's result), run, or failed.

    Its report is written once: by the runner for a run (before the run logs it, for a later skipped
    job to reuse), here for a skipped or a failed job. A run whose logging fails after its report was
    written leaves the failed report in its place.
    """
    averaging = OmegaConf.select(cfg, f"{AVERAGINGS.group}.name", default="?")
    name = run_name(averaging, job.overrides, job.sweep.swept_keys if job.sweep else None)
    try:
        uri = OmegaConf.select(cfg, "tracking.uri", default=None)  # before any check can fail
        if secrets.redact_output_if_secret(str(uri or "")):
            secrets.redact_hydra_files(job.output_dir)
        plan = plan_from(cfg)
        settings = plan.settings.tracking
        may_skip = bool(job.sweep and settings.skip_finished)  # a sweep checked its jobs' data already
        if plan.checkpoint_files is not None:  # checking that they fit loads a model: TensorFlow, quietly
            import_tensorflow(verbose=plan.settings.verbose)
        data = None if may_skip else plan.load_data()
        from polyexp.core.identity import job_identity
        from polyexp.run import tracking  # loads MLflow: only once the config is checked
        from polyexp.run.resume import finished_run

        store = tracking.open_store(settings.uri, settings.experiment, job.launch_dir)
        tracking.end_dead_runs(store)  # an earlier command's run whose process was killed
        identity = job_identity(plan)
        skipped = finished_run(store, identity, job, name) if may_skip else None
        if skipped is not None:
            write_job_report(job.output_dir, skipped)
            return skipped
        data = plan.load_data() if data is None else data
        import_tensorflow(verbose=plan.settings.verbose)
        from polyexp.run.runner import run_job  # loads TensorFlow: only once the store answers

        return run_job(plan, data, job, store, identity)
    except BaseException as exc:
        line = str(exc) if isinstance(exc, PolyexpError) else full_disk(exc)
        try:
            write_job_report(job.output_dir, JobResult("failed", name, list(job.overrides),
                                                       error=line or failure_reason(exc), number=job.position))
        except OSError as unwritten:  # a full disk, often: the job's own error says more
            log.warning("%s: could not write its report: %s", job.label, full_disk(unwritten) or unwritten)
        if line is not None and job.sweep is None:
            raise refusal(line) from exc
        if line is not None:  # Hydra reports only the sweep's first failure, and runs the batch's other jobs
            log.error("%s failed: %s", job.label, line)
            raise CompactHydraException(line) from exc
        raise


def failure_reason(exc: BaseException) -> str:
    """Why a job ended without a result, never empty: ``interrupted (Ctrl-C)`` for a bare KeyboardInterrupt."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(exc, Terminated):
        return "terminated (SIGTERM)"
    return str(exc) or type(exc).__name__


def current_job() -> Job:
    """The running Hydra job's folders, overrides and sweep."""
    hydra_config = HydraConfig.get()
    launch_dir = Path(hydra_config.runtime.cwd)
    multirun = hydra_config.mode == RunMode.MULTIRUN
    return Job(
        output_dir=Path(hydra_config.runtime.output_dir),
        launch_dir=launch_dir,
        overrides=tuple(hydra_config.overrides.task),
        sweep=read_sweep(launch_dir / hydra_config.sweep.dir) if multirun else None,
        number=hydra_config.job.num if multirun else 0,
        workers=parallel_workers(hydra_config.launcher),
    )


def parallel_workers(launcher: DictConfig) -> int:
    """How many jobs the launcher runs side by side on one machine.

    joblib: ``n_jobs`` (-1: one per core). Ray: as many as the cores hold when each job is a task
    of ``ray.remote.num_cpus`` cores (Ray's default: 1), so a job's threads are about its CPUs.
    """
    cores = os.cpu_count() or 1
    if "ray" in launcher:
        task_cpus = OmegaConf.select(launcher, "ray.remote.num_cpus", default=None) or 1
        return max(1, int(cores // task_cpus))
    n_jobs = launcher.get("n_jobs") or 1
    return cores if n_jobs < 0 else n_jobs
