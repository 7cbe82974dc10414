"""polyexp's SLURM launcher: Hydra's submitit launcher, with a checked submission and jobs that always end.

``hydra/launcher=slurm`` (``conf/hydra/launcher/slurm.yaml``) selects it. Three changes to Hydra's:

- **The submission is checked first** (``sbatch --test-only``), before the sweep's parent run exists:
  a job the cluster refuses fails in one line that names the setting (``hydra.launcher.mem_gb=512``).
- **A job that SLURM stops ends its run FAILED, with the reason** (scancel, or its time limit): submitit
  ignores SIGTERM, and SLURM kills the job 30 s later (``KillWait``), leaving its run RUNNING; here
  SIGTERM stops the job through ``polyexp.run.stop``. submitit's notice before the time limit
  (``signal_delay_s``), on which it would requeue the job, is ignored.
- **The sweep waits for every job,** not only up to the first one that did not finish, and Ctrl-C
  cancels the jobs it submitted. A job that left no result is named with its SLURM state. submitit
  learns a job's state from the accounting (``sacct``) alone; where that lags behind or fails, a job
  the controller (``scontrol``) says has ended counts as ended, so the sweep never waits forever.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import DictConfig, OmegaConf

from polyexp.core.errors import ConfigError, PolyexpError
from polyexp.run.command_line import refusal
from polyexp.run.stop import process_stop

log = logging.getLogger(__name__)

# The launcher's settings that decide whether the cluster accepts a job.
RESOURCES = ("partition", "mem_gb", "cpus_per_task", "timeout_min", "nodes", "tasks_per_node", "gpus_per_node",
             "gpus_per_task", "cpus_per_gpu", "mem_per_gpu", "mem_per_cpu", "qos", "account", "constraint",
             "exclude", "gres", "additional_parameters")


class JobStopped(PolyexpError):
    """SLURM stopped the job: cancelled, out of time, or preempted."""


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """See the module docstring; its settings are Hydra's ``submitit_slurm`` launcher's."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        try:
            check_submission(self.params)
        except ConfigError as exc:
            raise refusal(str(exc)) from exc

    def __call__(self, *args: Any) -> JobReturn:  # in the SLURM job
        timeout = f"hydra.launcher.timeout_min={self.params['timeout_min']}"
        process_stop().on_signals({signal.SIGTERM: lambda: JobStopped(
            f"SLURM stopped the job at its time limit ({timeout})" if _out_of_time()
            else "SLURM cancelled the job (scancel, or preemption)")})
        # submitit's notice that the time limit is near (signal_delay_s before it): the job goes on until
        # it ends or SLURM stops it (at a short limit, SLURM sends the notice well before its time).
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # submitit's SlurmJobEnvironment.USR_SIG
        return super().__call__(*args)

    def checkpoint(self, *args: Any, **kwargs: Any) -> None:
        """No requeue: a job stopped by SLURM ends FAILED; running the command again runs it anew."""
        return None

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        folder = Path(self.params["submitit_folder"]).parent  # one subfolder per SLURM job: .submitit/<id>
        before = set(_job_ids(folder))
        try:
            return self._results(self._submit(job_overrides, initial_job_idx))
        except KeyboardInterrupt:
            submitted = sorted(set(_job_ids(folder)) - before)
            if submitted:
                subprocess.run(["scancel", *submitted], check=False, capture_output=True)
                log.info("cancelled the SLURM jobs %s", " ".join(submitted))
            raise

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
        """The jobs, submitted as Hydra's ``launch`` submits them (one job array, this launcher its function).

        Hydra's ``launch`` then waits on submitit's jobs, which only ``sacct`` answers; these are
        ``controller_aware_job``'s, which the controller answers too.
        """
        from hydra.core.singleton import Singleton
        from hydra.core.utils import filter_overrides

        assert self.config is not None
        executor = slurm_executor(self.params["submitit_folder"], self.params)
        log.info("Submitit 'slurm' sweep output dir : %s", self.config.hydra.sweep.dir)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        arguments = []  # BaseSubmititLauncher.__call__'s, for each job
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            arguments.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        job_class = controller_aware_job()
        return [job_class(executor.folder, job.job_id, tasks=range(job.num_tasks))
                for job in executor.map_array(self, *zip(*arguments, strict=True))]

    def _results(self, jobs: Sequence[Any]) -> list[JobReturn]:
        """Every job's result, in order, once all have ended; a job that left none is logged, with its state."""
        results = []
        for job in jobs:
            try:
                results.append(job.results()[0])
            except Exception:
                log.error("SLURM job %s ended %s without a result (its log: %s)", job.job_id, job.state,
                          job.paths.stderr)
        return results


# The states in which submitit waits on for a job (``submitit.core.core.InfoWatcher.is_done``).
UNFINISHED = frozenset({"READY", "PENDING", "RUNNING", "UNKNOWN", "REQUEUED", "COMPLETING", "PREEMPTED",
                        "CONFIGURING", "RESIZING", "SUSPENDED"})


@functools.cache
def controller_aware_job() -> type:
    """submitit's ``SlurmJob`` with a watcher of its own, which asks the controller too (see the module docstring).

    A subclass, so that submitit's ``SlurmJob`` and its shared watcher stay as they are in the process.
    """
    from submitit import SlurmJob  # here: submitit loads only when a SLURM sweep runs
    from submitit.slurm.slurm import SlurmInfoWatcher

    class Watcher(SlurmInfoWatcher):
        """submitit's ``sacct`` watcher, and ``scontrol`` for a job that ``sacct`` still calls unfinished."""

        def __init__(self, delay_s: int) -> None:
            super().__init__(delay_s=delay_s)
            self.asked: dict[str, float] = {}  # job id -> when the controller was last asked

        def get_state(self, job_id: str, mode: str = "standard") -> str:
            state = super().get_state(job_id, mode=mode)
            if mode == "cache" or state.split()[0].upper() not in UNFINISHED:
                return state
            if time.monotonic() - self.asked.get(job_id, float("-inf")) < 10:  # the controller, every 10 s at most
                return state
            self.asked[job_id] = time.monotonic()
            found = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True,
                                   check=False, timeout=30)
            return controller_state(state, found.returncode, found.stdout + found.stderr)

    class ControllerAwareJob(SlurmJob):
        """A SLURM job whose state polyexp's watcher gives (one for all these jobs, as submitit shares its own)."""

        watcher = Watcher(delay_s=60)

    return ControllerAwareJob


def controller_state(accounting: str, returncode: int, scontrol_output: str) -> str:
    """A job's state: the accounting's, unless the controller says the job has ended (or no longer knows it).

    ``controller_state("RUNNING", 0, "JobId=7 ... JobState=CANCELLED Reason=None ...")`` is ``"CANCELLED"``.
    """
    if returncode != 0:
        return "ENDED" if "Invalid job id" in scontrol_output else accounting  # purged, or the controller is away
    found = re.search(r"\bJobState=(\S+)", scontrol_output)
    if found is None or found.group(1).upper() in UNFINISHED:
        return accounting
    return found.group(1)


def _out_of_time() -> bool:
    """Whether SLURM is ending this job at its time limit, as ``scontrol`` says.

    The reason (``Reason=TimeLimit``, ``JobState=TIMEOUT``) may not be set yet when the job gets its
    SIGTERM, so a run time at its limit counts too; scancel and preemption come before it.
    """
    fields: dict[str, str] = {}
    for _ in range(3):  # a busy controller may answer nothing at first
        with contextlib.suppress(subprocess.TimeoutExpired):
            found = subprocess.run(["scontrol", "-o", "show", "job", os.environ.get("SLURM_JOB_ID", "")],
                                   capture_output=True, text=True, check=False, timeout=10)
            fields = dict(re.findall(r"\b(\w+)=(\S+)", found.stdout))
        if "JobState" in fields:
            break
        time.sleep(1)
    if fields.get("Reason") == "TimeLimit" or fields.get("JobState") == "TIMEOUT":
        return True
    run, limit = _seconds(fields.get("RunTime", "")), _seconds(fields.get("TimeLimit", ""))
    return run is not None and limit is not None and run >= limit


def _seconds(duration: str) -> int | None:
    """``[D-]HH:MM:SS`` (or ``MM:SS``) in seconds; None for ``UNLIMITED`` or nothing."""
    days, _, clock = duration.rpartition("-")
    parts = clock.split(":")
    if not all(part.isdigit() for part in parts) or not 2 <= len(parts) <= 3:
        return None
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return seconds + (int(days) * 86400 if days.isdigit() else 0)


def _job_ids(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.replace("_", "").isdigit()] if folder.is_dir() else []


def check_submission(params: Mapping[str, Any]) -> None:
    """Ask SLURM whether it would take these jobs (``sbatch --test-only``); ConfigError naming the setting if not."""
    if shutil.which("sbatch") is None:
        raise ConfigError("hydra/launcher=slurm needs SLURM's sbatch on PATH: run the command on a node of "
                          "the cluster (a login node)")
    refusal = sbatch_refusal(params)
    if refusal is None:
        return
    culprits = [name for name in RESOURCES if params.get(name) not in (None, {})
                and sbatch_refusal({**params, name: None}) is None]
    named = ", ".join(f"hydra.launcher.{name}={params[name]}" for name in culprits) or "hydra.launcher"
    raise ConfigError(f"{named}: the SLURM cluster refuses the jobs ({refusal})")


def slurm_executor(folder: str | Path, params: Mapping[str, Any]) -> Any:
    """submitit's executor for these launcher settings, built as Hydra's submitit launcher builds it."""
    from submitit import AutoExecutor  # here: Hydra's plugin scan imports this module on every command

    init = {"slurm_max_num_timeout": params["max_num_timeout"]} if "max_num_timeout" in params else {}
    executor = AutoExecutor(folder=folder, cluster="slurm", **init)
    generic = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{name if name in generic else f"slurm_{name}": value for name, value in params.items()
                                  if name not in ("submitit_folder", "max_num_timeout")})
    return executor


def sbatch_refusal(params: Mapping[str, Any]) -> str | None:
    """sbatch's error line for a job with these launcher settings, or None if SLURM would take it."""
    # Private: submitit writes its sbatch script only on submitting (tests/test_third_party_pins.py pins it).
    from submitit.slurm.slurm import _make_sbatch_string

    with tempfile.TemporaryDirectory() as folder:
        executor = slurm_executor(folder, {name: value for name, value in params.items() if value is not None})
        script = Path(folder) / "check.sh"
        script.write_text(_make_sbatch_string(command="true", folder=folder, **executor.parameters))
        found = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True, check=False)
    if found.returncode == 0:
        return None
    lines = [line.removeprefix("sbatch: error: ") for line in found.stderr.splitlines() if "error" in line]
    return (lines or found.stderr.splitlines() or ["sbatch failed"])[-1].strip()
