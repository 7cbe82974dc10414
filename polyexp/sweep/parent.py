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

A :class:`SweepParent` is closed by the ``with`` block around polyexp's sweep, however the sweep
ends. Under a foreign sweeper, the callback closes it at ``on_multirun_end``, which Hydra skips when a
job fails or the sweep is interrupted: ``polyexp.app.cli`` then closes it (:func:`close_sweeps`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from polyexp.core.errors import PolyexpError
from polyexp.core.files import make_folder, write_text
from polyexp.core.registry import Affects
from polyexp.core.settings import plan_from
from polyexp.run import secrets, stop
from polyexp.run.job import (
    JOB_REPORT,
    NOT_NAMING,
    JobResult,
    Sweep,
    override_words,
    read_job_report,
    split_override,
)

if TYPE_CHECKING:
    from polyexp.core.settings import Plan
    from polyexp.run.tracking import Store

log = logging.getLogger(__name__)

SWEEP_FILE = "polyexp_sweep.json"
POLYEXP_SWEEPER = "hydra_plugins.polyexp_sweeper.PolyexpSweeper"

failed_sweeps: list[Path] = []  # the sweeps this process closed as FAILED: the command exits non-zero


class LaunchCallback(Callback):
    """Hydra callback: check a run's output folder first; open and close a sweep under a foreign sweeper."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with stop_on_error():
            make_folder(Path(config.hydra.runtime.cwd) / config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.sweeper.get("_target_") == POLYEXP_SWEEPER:
            return  # polyexp's sweeper opens the sweep once it has checked every job
        with stop_on_error():
            overrides = list(config.hydra.overrides.task)
            searched = [o for o in overrides if split_override(o)[0] in swept_keys_of(overrides)]
            SweepParent.open(config, overrides, sweep_key(config.tracking.experiment, [plan_from(config)], searched))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        close_sweeps()


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


def sweep_name(overrides: Sequence[str]) -> str:
    """A short name for the sweep's parent run: ``sweep exp alpha=1,2,4``."""
    return "sweep " + (" ".join(override_words(overrides)) or "(defaults)")


def sweep_key(experiment: str, jobs: Sequence[Plan], searched: Sequence[str] = ()) -> str:
    """What identifies a sweep across re-runs: the experiment and its jobs' config identities.

    The jobs are those the sweep runs (polyexp's sweeper knows them all in advance); a sweeper that
    draws its jobs as it goes (Optuna) gives the base config as the one job and its ``searched``
    overrides, those that change numbers. Repeated jobs count once.
    """
    from polyexp.core.identity import config_identity, digest

    configs = sorted({digest(config_identity(plan, Affects.SCORING)) for plan in jobs})
    searched = sorted(o for o in searched if not split_override(o)[0].startswith(NOT_NAMING))
    return digest({"experiment": experiment, "jobs": configs, "searched": searched})


def swept_keys_of(overrides: Sequence[str]) -> tuple[str, ...]:
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return tuple(split_override(o.input_line or "")[0] for o in parsed if o.is_sweep_override())


class SweepParent:
    """A sweep's parent run while the sweep runs: opened once its jobs are known, closed however it ends."""

    unclosed: ClassVar[dict[Path, SweepParent]] = {}  # opened by this process and not closed yet (a foreign sweeper's)

    def __init__(self, sweep: Sweep, store: Store) -> None:
        self.sweep, self.store = sweep, store

    @classmethod
    def open(cls, config: DictConfig, overrides: Sequence[str], key: str, num_jobs: int | None = None) -> SweepParent:
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
            tracking.TAG_PREFIX + "overrides": secrets.redact(" ".join(overrides)),
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
                                          run_name=sweep_name(overrides), tags=tags).info.run_id
            else:
                run_id = earlier.info.run_id
                tracking.reopen_run(store.client, run_id, tags)
            sweep = Sweep(folder, run_id, num_jobs, swept_keys_of(overrides))
            parent = cls.unclosed[folder] = cls(sweep, store)
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
        self.close(interrupted=kind is not None and issubclass(kind, (KeyboardInterrupt, SystemExit)))

    def close(self, interrupted: bool = False) -> None:
        """Summarise the sweep on its parent run and end it (KILLED when interrupted)."""
        if self.sweep.folder not in self.unclosed:
            return
        secrets.redact_hydra_files(self.sweep.folder)  # multirun.yaml
        try:
            close_sweep(self.sweep, self.store, interrupted)
        except Exception:
            del self.unclosed[self.sweep.folder]
            raise  # a Ctrl-C or SIGTERM while closing leaves it open: the command closes it again, KILLED
        del self.unclosed[self.sweep.folder]


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


def close_sweeps(interrupted: bool = False) -> None:
    """End every sweep this process opened and has not closed yet (a foreign sweeper's, when Hydra gave up)."""
    for parent in list(SweepParent.unclosed.values()):
        parent.close(interrupted)


def close_sweep(sweep: Sweep, store: Store, interrupted: bool = False) -> None:
    from polyexp.run import links, tracking
    from polyexp.run.outputs import write_png
    from polyexp.run.plots import sweep_figure

    interrupted = interrupted or stop.requested() is not None
    end_lost_jobs(store, sweep.parent_run_id, "KILLED" if interrupted else "FAILED")
    reports = [read_job_report(path) for path in sweep.folder.rglob(JOB_REPORT)]
    reports.sort(key=lambda r: (r.number is None, r.number or 0, r.run_name))
    failed = [r for r in reports if r.status == "failed"]
    missing = max(0, (sweep.num_jobs or 0) - len(reports))
    for result in failed:
        log.error("sweep: %s (%s) failed: %s", job_label(result), result.run_name, result.error)
    if missing and not interrupted:
        log.error("sweep: %d of %d jobs left no report (lost, or never started)", missing, sweep.num_jobs)

    mark_superseded(store, sweep.parent_run_id)
    ranked = rank(reports)
    table = sweep.folder / "sweep_results.csv"
    write_text(table, _table(reports, ranked))
    figure_path = sweep.folder / "sweep_comparison.png"
    scored = [_plot_row(r) for r in ranked]
    if scored:
        write_png(figure_path, sweep_figure(scored, next((r.test_rows for r in ranked if r.test_rows), None)))
        print_ranking(ranked)

    run_id, client = sweep.parent_run_id, store.client
    counts = {status: sum(r.status == status for r in reports) for status in ("finished", "skipped", "failed")}
    status = "KILLED" if interrupted else "FAILED" if failed or missing else "FINISHED"
    reused = [r for r in reports if r.reused]
    try:
        tracking.log_metrics(client, run_id, [(f"jobs_{k}", v, 0) for k, v in counts.items()]
                             + [("jobs_missing", missing, 0)])
        tags = {"failed_jobs": "\n".join(f"{job_label(r)} ({r.run_name}): {r.error}" for r in failed)[:5000],
                "reused_jobs": "\n".join(reused_line(r) for r in reused)[:5000]}
        tracking.log_tags(client, run_id, {k: v for k, v in tags.items() if v})
        for key in (k for k, v in tags.items() if not v):  # a resume that finished them: no longer true
            with contextlib.suppress(Exception):  # MLflow raises on a tag that is not there
                client.delete_tag(run_id, tracking.TAG_PREFIX + key)
        for path in (table, figure_path) if scored else (table,):
            tracking.guarded(client.log_artifact, run_id, str(path))
    except Exception as exc:
        log.warning("could not log the sweep summary to run %s: %s (it is in %s)", run_id, exc, sweep.folder)
    tracking.end_run(client, run_id, status)
    if status == "FAILED":
        failed_sweeps.append(sweep.folder)
    outcomes = [f"{v} {k}" for k, v in counts.items()]
    if missing:
        outcomes.append(f"{missing} never started" if interrupted else f"{missing} left no report")
    log.info("sweep %s: %s%s; summary in %s", status, ", ".join(outcomes),
             f" (of {sweep.num_jobs} jobs)" if sweep.num_jobs else "", sweep.folder)
    with contextlib.suppress(Exception):  # a store that is gone was reported above
        log.info("%s", links.run_view_hint(client, run_id))


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


def job_label(result: JobResult) -> str:
    return f"job {result.number}" if result.number is not None else "job"


def reused_line(result: JobResult) -> str:
    """``exp alpha=2 is run 3f2a... (exp alpha=2) of sweep exp alpha=1,2; outputs: multirun/.../1``."""
    reused = result.reused or {}
    return (f"{result.run_name} is run {reused.get('run_id')} ({reused.get('run_name')}) of "
            f"{reused.get('parent') or 'a single run'}; outputs: {reused.get('output_dir') or '?'}")


def rank(reports: list[JobResult]) -> list[JobResult]:
    """The jobs with a validation score, best first (what the sweep selects on: validation only); jobs
    that tie keep their order (the job order)."""
    return sorted((r for r in reports if r.selected_val_acc is not None), key=lambda r: -r.selected_val_acc)


def places(ranked: Sequence[JobResult]) -> list[str]:
    """Each ranked job's place: ``1``, ``2``, ... with ties sharing one, marked ``=`` (``2=``, ``2=``, ``4``)."""
    scores = [r.selected_val_acc for r in ranked]
    return [f"{1 + sum(other > score for other in scores)}{'=' if scores.count(score) > 1 else ''}"
            for score in scores]


def ties(ranked: Sequence[JobResult]) -> list[str]:
    """One line per validation score that several jobs share: ``val 0.810: exp alpha=1, exp alpha=2``."""
    scores = [r.selected_val_acc for r in ranked]
    shared = sorted({score for score in scores if scores.count(score) > 1}, reverse=True)
    return [f"val {score:.3f}: " + ", ".join(r.run_name for r in ranked if r.selected_val_acc == score)
            for score in shared]


def print_ranking(ranked: list[JobResult]) -> None:
    """The sweep's summary table on stdout: jobs ranked on validation, with their test numbers."""
    from polyexp.run.outputs import summary_interval

    width = max(len(r.run_name) for r in ranked)
    jobs = f"{len(ranked)} job{'s' if len(ranked) != 1 else ''}"
    intervals = any(math.isfinite(r.summary.get("selected_test_acc_ci_low", math.nan)) for r in ranked)
    seeds = "mean over seeds [95% CI]" if intervals else "one seed, no interval"
    print(f"\nsweep: {jobs} ranked on validation; test accuracy of each job's selected n ({seeds})")
    print(f"  {'rank':<5}{'job':<{width + 2}}{'n':>3}  {'val':<7}{'test':<24}gain over the last checkpoint")
    for place, r in zip(places(ranked), ranked, strict=True):
        s = r.summary
        print(f"  {place:<5}{r.run_name:<{width + 2}}{int(s['selected_n']):>3}  {s['selected_val_acc']:<7.3f}"
              f"{summary_interval(s, 'selected_test_acc'):<24}{summary_interval(s, 'selected_gain_vs_last', True)}")
    for line in ties(ranked):
        print(f"  = tie on validation, listed in job order (validation cannot choose between them): {line}")
    for r in ranked:
        if r.reused:
            print(f"  reused: {reused_line(r)}")
    sys.stdout.flush()


def _plot_row(result: JobResult) -> dict[str, Any]:
    s = result.summary
    return {"name": result.run_name, "selected_val_acc": s["selected_val_acc"],
            **{f"selected_test_acc{p}": s.get(f"selected_test_acc{p}", float("nan"))
               for p in ("", "_ci_low", "_ci_high")},
            "test_average_acc": result.test_average_acc}


def _table(reports: list[JobResult], ranked: list[JobResult]) -> str:
    from polyexp.run.outputs import csv_text

    order = {id(r): i for i, r in enumerate(ranked)}
    place = dict(zip(order, places(ranked), strict=True))
    k = max((len(r.test_average_acc) for r in reports), default=0)
    numbers = [f"{key}{part}" for key in ("selected_val_acc", "selected_test_acc", "selected_gain_vs_last")
               for part in ("", "_ci_low", "_ci_high")]
    header = ["job", "rank", "run_name", "status", "run_id", "trajectory", "selected_n", *numbers, "error",
              "reused_run_id", *(f"test_average_acc_{n}" for n in range(1, k + 1))]
    return csv_text(header, [  # rows made here: a generator would be run by csv_text, back in this module
        [r.number if r.number is not None else "", place.get(id(r), ""), r.run_name, r.status, r.run_id or "",
         r.trajectory or "", r.summary.get("selected_n", ""), *(r.summary.get(key, "") for key in numbers),
         r.error or "", (r.reused or {}).get("run_id", ""), *r.test_average_acc]
        for r in sorted(reports, key=lambda r: order.get(id(r), len(order)))])

