"""Sweeps: one MLflow parent run per sweep, summarising its jobs, kept across re-runs of the command.

The parent is opened in the launching process before any job starts (by ``polyexp.sweep.sweeper`` once it
has checked every job, or by :class:`LaunchCallback` under another sweeper such as Optuna), so
parallel jobs never race to create a fresh SQLite store. Running a sweep's command again continues
under the same parent run (its tag ``polyexp.sweep_key`` identifies the sweep's jobs): skipped jobs
stay its children, re-run jobs join it; a job an earlier, different sweep finished is named in the
ranking and on the parent (tag ``polyexp.reused_jobs``), its folder links to the earlier outputs.

The parent and its jobs share one thing, the sweep's folder: ``polyexp_sweep.json`` there (the
parent's run, written once) tells each job its parent, and each job's ``polyexp_job.json`` in its own
folder below tells the parent how it ended, finished, skipped or failed, even one that failed before
it had an MLflow run. When the sweep ends, the parent gets its jobs ranked by their validation score,
each with its test accuracy and interval (``sweep_results.csv``, ``sweep_comparison.png``), which jobs
failed and why, and the command prints the ranking.

A :class:`SweepParent` has one owner, which ends it: the ``with`` block around polyexp's sweep, or
under a foreign sweeper the :class:`LaunchCallback`, at ``on_multirun_end``. Hydra skips that when a
job fails or the sweep is interrupted; the command's stop (``polyexp.run.stop.Stop.close_all``) then closes
it. The summary itself (ranking, CSV, the figure's rows) is a pure function of the jobs' reports,
``polyexp.sweep.summary.summarise``; :func:`close_sweep` writes and logs it. A sweep that ends FAILED
ends the command with :class:`SweepFailed` (exit status 1).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from polyexp.core.errors import PolyexpError
from polyexp.core.files import make_folder, write_text
from polyexp.core.registry import Affects
from polyexp.core.settings import plan_from
from polyexp.run import secrets
from polyexp.run.command_line import Argument, CommandLine, parse
from polyexp.run.job import JOB_REPORT, Sweep, naming, override_words, read_job_report
from polyexp.run.stop import Stop, process_stop
from polyexp.sweep.summary import SweepSummary, summarise

if TYPE_CHECKING:
    from polyexp.core.settings import Plan
    from polyexp.run.tracking import Store

log = logging.getLogger(__name__)

SWEEP_FILE = "polyexp_sweep.json"
POLYEXP_SWEEPER = "hydra_plugins.polyexp_sweeper.PolyexpSweeper"



class SweepFailed(SystemExit):
    """A sweep ended FAILED (a job failed or left no report): the command exits 1. Hydra drops a sweeper's
    return value and a callback's exceptions, not a SystemExit, so this is how the outcome reaches the command."""

    def __init__(self) -> None:
        super().__init__(1)


class LaunchCallback(Callback):
    """Hydra callback: check a run's output folder first; own the sweep of a foreign sweeper (Optuna)."""

    def __init__(self) -> None:
        self.parent: SweepParent | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with stop_on_error():
            make_folder(Path(config.hydra.runtime.cwd) / config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.sweeper.get("_target_") == POLYEXP_SWEEPER:
            return  # polyexp's sweeper opens the sweep once it has checked every job
        with stop_on_error():
            command = parse(list(config.hydra.overrides.task))
            searched = [a for a in command if a.swept]
            key = sweep_key(config.tracking.experiment, [plan_from(config)], searched)
            self.parent = SweepParent.open(config, command, key, stop=process_stop())

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent is not None:
            self.parent.end()


# MLflow and matplotlib load inside the functions: Hydra builds this callback for every command,
# and a single run with a bad config should fail without waiting for them.


@contextlib.contextmanager
def stop_on_error() -> Iterator[None]:
    """Stop the command on a PolyexpError with its one line (Hydra turns a callback's exceptions into warnings)."""
    try:
        yield
    except PolyexpError as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise SystemExit(1) from exc
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None


def sweep_name(command: CommandLine) -> str:
    """A short name for the sweep's parent run: ``sweep exp alpha=1,2,4``."""
    return "sweep " + (" ".join(override_words(command)) or "(defaults)")


def sweep_key(experiment: str, jobs: Sequence[Plan], searched: Sequence[Argument] = ()) -> str:
    """What identifies a sweep across re-runs: the experiment and its jobs' config identities.

    The jobs are those the sweep runs (polyexp's sweeper knows them all in advance); a sweeper that
    draws its jobs as it goes (Optuna) gives the base config as the one job and its ``searched``
    overrides, those that change numbers. Repeated jobs count once.
    """
    from polyexp.core.identity import config_identity, digest

    configs = sorted({digest(config_identity(plan, Affects.SCORING)) for plan in jobs})
    return digest({"experiment": experiment, "jobs": configs,
                   "searched": sorted(a.text for a in naming(CommandLine(tuple(searched))))})


class SweepParent:
    """A sweep's parent run while the sweep runs: opened once its jobs are known, closed however it ends.

    Its owner ends it (:meth:`end`, or the ``with`` block around the sweep); until then the command's
    :class:`~polyexp.run.stop.Stop` holds it too, to close it KILLED when Hydra gives up on the sweep (a failed
    job, Ctrl-C), where Hydra skips the owner's end.
    """

    def __init__(self, sweep: Sweep, store: Store, stop: Stop) -> None:
        self.sweep, self.store, self.stop = sweep, store, stop
        self.closed = False

    @classmethod
    def open(cls, config: DictConfig, command: CommandLine, key: str, num_jobs: int | None = None, *,
             stop: Stop) -> SweepParent:
        """Open the sweep's parent run, or reopen the one an earlier run of the same sweep left."""
        from polyexp.run import tracking

        launch_dir = Path(config.hydra.runtime.cwd)
        folder = (launch_dir / config.hydra.sweep.dir).resolve()
        make_folder(folder, "hydra.sweep.dir")
        store = tracking.open_store(config.tracking.uri, config.tracking.experiment, launch_dir)
        _check_folder_free(folder, store)
        tags = {
            tracking.TAG_PREFIX + "role": "sweep",
            tracking.TAG_PREFIX + "sweep_key": key,
            tracking.TAG_PREFIX + "sweep_dir": str(folder),
            tracking.TAG_PREFIX + "overrides": secrets.redact(" ".join(command.texts)),
            tracking.PROCESS_TAG: tracking.process_tag(),
            **tracking.git_commit(launch_dir),
        }
        earlier = tracking.find_run(store, {"role": "sweep", "sweep_key": key})
        if earlier is not None and _live_elsewhere(earlier):
            log.info("the same sweep runs now under the parent run %s (%s): this one gets a parent of its own",
                     earlier.info.run_id, earlier.data.tags.get(tracking.PROCESS_TAG))
            earlier = None
        jobs = "?" if num_jobs is None else num_jobs
        with stop.held():  # a Ctrl-C here is raised once the parent is registered, so it still ends the run
            if earlier is None:
                run_id = tracking.guarded(store.client.create_run, store.experiment_id,
                                          run_name=sweep_name(command), tags=tags).info.run_id
            else:
                run_id = earlier.info.run_id
                tracking.reopen_run(store.client, run_id, tags)
            parent = cls(Sweep(folder, run_id, num_jobs, command.swept_keys), store, stop)
            stop.close_on_exit(parent.close)
        sweep = parent.sweep
        if earlier is None:
            log.info("sweep of %s jobs: parent run %s in %s", jobs, run_id, store.uri)
        else:
            log.info("sweep of %s jobs: continuing under the parent run %s (%s) in %s", jobs, run_id,
                     earlier.info.run_name, store.uri)
        write_text(folder / SWEEP_FILE, json.dumps({
            "parent_run_id": run_id, "num_jobs": num_jobs, "swept_keys": list(sweep.swept_keys),
        }))
        return parent

    def __enter__(self) -> SweepParent:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.end()
        else:
            self.close(interrupted=issubclass(kind, (KeyboardInterrupt, SystemExit)))

    def end(self) -> None:
        """Close the sweep as it ended; :class:`SweepFailed` when it ended FAILED."""
        if self.close() == "FAILED":
            raise SweepFailed

    def close(self, interrupted: bool = False) -> str | None:
        """Summarise the sweep on its parent run and end it (KILLED when interrupted); its status, or None
        when it was closed already."""
        if self.closed:
            return None
        secrets.redact_hydra_files(self.sweep.folder)  # multirun.yaml
        try:
            with self.stop.uninterrupted():  # a Ctrl-C here is raised once the summary is whole: then closed KILLED
                summary = close_sweep(self.sweep, self.store, interrupted or self.stop.requested() is not None)
        except Exception:
            self.closed = True
            self.stop.closed(self.close)
            raise  # a Ctrl-C or SIGTERM while closing leaves it open: the command closes it again, KILLED
        self.closed = True
        self.stop.closed(self.close)
        return summary.status


def _live_elsewhere(run: Any) -> bool:
    """Whether a sweep's parent run is RUNNING in another live process: two identical sweeps at once
    each keep their own parent, so that neither ends the other's live jobs as lost."""
    from polyexp.run import tracking

    where = run.data.tags.get(tracking.PROCESS_TAG, "")
    return (run.info.status == "RUNNING" and bool(where) and where != tracking.process_tag()
            and tracking.process_alive(where) is not False)


def _check_folder_free(folder: Path, store: Store) -> None:
    """Refuse a sweep folder that a live sweep uses (two sweeps started in the same second share Hydra's
    default ``multirun/DATE/TIME``): their jobs' reports would mix."""
    from polyexp.run import tracking

    earlier = read_sweep(folder)
    if earlier is None:
        return
    try:
        run = store.client.get_run(earlier.parent_run_id)
    except Exception:  # a parent of another store, or gone: the folder is this sweep's now
        return
    if _live_elsewhere(run):
        raise PolyexpError(
            f"hydra.sweep.dir={folder} is in use by a running sweep (parent run {run.info.run_id}, process "
            f"{run.data.tags.get(tracking.PROCESS_TAG)}): wait for it, or set hydra.sweep.dir to another folder")


def read_sweep(folder: Path) -> Sweep | None:
    """The sweep a job belongs to, or None if it was launched without polyexp's callback."""
    path = folder / SWEEP_FILE
    if not path.exists():
        return None
    found = json.loads(path.read_text())
    return Sweep(folder.resolve(), found["parent_run_id"], found["num_jobs"], tuple(found["swept_keys"]))


def close_sweep(sweep: Sweep, store: Store, interrupted: bool = False) -> SweepSummary:
    """Summarise the sweep on its parent run from its jobs' reports, and end the run (KILLED when
    interrupted): the summary (:func:`~polyexp.sweep.summary.summarise`) logged, written to the sweep's
    folder (``sweep_results.csv``, ``sweep_comparison.png``), printed, and logged to the run."""
    from polyexp.run import links, tracking
    from polyexp.run.outputs import write_png
    from polyexp.run.plots import sweep_figure

    end_lost_jobs(store, sweep.parent_run_id, "KILLED" if interrupted else "FAILED")
    reports = [read_job_report(path) for path in sweep.folder.rglob(JOB_REPORT)]
    summary = summarise(reports, sweep.num_jobs, interrupted)
    for line in summary.errors:
        log.error("%s", line)

    mark_superseded(store, sweep.parent_run_id)
    table = sweep.folder / "sweep_results.csv"
    write_text(table, summary.results_csv)
    figure_path = sweep.folder / "sweep_comparison.png"
    if summary.plot_rows:
        write_png(figure_path, sweep_figure(summary.plot_rows, summary.plot_test_rows))
        sys.stdout.write(summary.ranking)
        sys.stdout.flush()

    run_id, client = sweep.parent_run_id, store.client
    try:
        tracking.log_metrics(client, run_id, [(key, value, 0) for key, value in summary.metrics.items()])
        tracking.log_tags(client, run_id, {k: v for k, v in summary.tags.items() if v})
        for key in (k for k, v in summary.tags.items() if not v):  # a resume that finished them: no longer true
            with contextlib.suppress(Exception):  # MLflow raises on a tag that is not there
                client.delete_tag(run_id, tracking.TAG_PREFIX + key)
        for path in (table, figure_path) if summary.plot_rows else (table,):
            tracking.guarded(client.log_artifact, run_id, str(path))
    except Exception as exc:
        log.warning("could not log the sweep summary to run %s: %s (it is in %s)", run_id, exc, sweep.folder)
    tracking.end_run(client, run_id, summary.status)
    log.info("sweep %s: %s; summary in %s", summary.status, summary.outcome, sweep.folder)
    with contextlib.suppress(Exception):  # a store that is gone was reported above
        log.info("%s", links.run_view_hint(client, run_id))
    return summary


class LostJob(PolyexpError):
    """A job whose process ended without ending its run: killed, or its machine lost."""


def end_lost_jobs(store: Store, parent_run_id: str, status: str) -> None:
    """End the sweep's job runs still RUNNING once the launcher is done: no process will end them now."""
    from polyexp.run import tracking

    lost = tracking.guarded(store.client.search_runs, [store.experiment_id], filter_string=(
        f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'"))
    for run in lost:
        reason = "interrupted" if status == "KILLED" else "its process ended without ending the run (killed, or lost)"
        log.error("sweep: job run %s (%s) %s", run.info.run_id, run.info.run_name, reason)
        tracking.end_run(store.client, run.info.run_id, status, error=LostJob(reason))


SUPERSEDED = " (superseded)"


def mark_superseded(store: Store, parent_run_id: str) -> None:
    """Tag and rename the sweep's ended job runs (KILLED, FAILED) that a re-run of the same job finished,
    so that the UI shows one live run per job: ``exp alpha=2 (superseded)``, ``polyexp.superseded_by``."""
    from polyexp.run import tracking

    runs = tracking.guarded(store.client.search_runs, [store.experiment_id],
                            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")
    finished = {r.data.tags.get(tracking.TAG_PREFIX + "job_key"): r for r in runs if r.info.status == "FINISHED"}
    for run in runs:
        twin = finished.get(run.data.tags.get(tracking.TAG_PREFIX + "job_key"))
        if (twin is None or run.info.status not in ("KILLED", "FAILED")
                or tracking.TAG_PREFIX + "superseded_by" in run.data.tags):
            continue
        with contextlib.suppress(Exception):  # a mark is a courtesy: the summary goes on without it
            tracking.log_tags(store.client, run.info.run_id, {"superseded_by": twin.info.run_id})
            store.client.update_run(run.info.run_id, name=run.info.run_name + SUPERSEDED)
