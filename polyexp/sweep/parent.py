"""Sweeps: one MLflow parent run per sweep, summarising its jobs, kept across re-runs of the command.

The parent is opened in the launching process before any job starts (by ``polyexp.sweep.sweeper`` once it
has checked every job, or by :class:`LaunchCallback` under another sweeper such as Optuna), so
parallel jobs never race to create a fresh SQLite store; ``polyexp_sweep.json`` in the sweep folder
tells each job its parent. Running a sweep's command again continues under the same parent run (its
tag ``polyexp.sweep_key`` identifies the command): skipped jobs stay its children, re-run jobs join it.

When the sweep ends, the parent gets its jobs ranked by their validation score, each with its test
accuracy and interval (``sweep_results.csv``, ``sweep_comparison.png``), which jobs failed and why,
and the command prints the ranking. Hydra skips ``on_multirun_end`` when a job fails, so
``polyexp.app.cli`` closes any sweep still open when Hydra returns.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from polyexp.core.errors import PolyexpError
from polyexp.core.files import make_folder, write_text
from polyexp.core.registry import Affects
from polyexp.core.settings import SETTINGS
from polyexp.run import stop
from polyexp.run.job import JOB_REPORT, Job, JobResult, Sweep, read_job_report

if TYPE_CHECKING:
    from polyexp.core.identity import Identity
    from polyexp.run.tracking import Store

log = logging.getLogger(__name__)

SWEEP_FILE = "polyexp_sweep.json"
POLYEXP_SWEEPER = "hydra_plugins.polyexp_sweeper.PolyexpSweeper"
# Overrides that never change a job's numbers (Hydra's, and the settings marked so), so they do not make another sweep.
_NOT_THE_SWEEP = ("hydra.", "hydra/", *(p.name for p in SETTINGS if p.affects is Affects.NOTHING))

_open_sweeps: dict[Path, tuple[Sweep, Any]] = {}  # folder -> (sweep, its Store)
failed_sweeps: list[Path] = []  # the sweeps this process closed as FAILED: the command exits non-zero


class LaunchCallback(Callback):
    """Hydra callback: check a run's output folder first; open (under a foreign sweeper) and close a sweep."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with stop_on_error():
            make_folder(Path(config.hydra.runtime.cwd) / config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.sweeper.get("_target_") == POLYEXP_SWEEPER:
            return  # polyexp's sweeper opens the sweep once it has checked every job
        with stop_on_error():
            open_sweep(config, list(config.hydra.overrides.task), num_jobs=None, swept_keys=swept_keys_of(
                list(config.hydra.overrides.task)))

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
    parts = []
    for override in overrides:
        key, _, value = override.partition("=")
        if key.startswith(_NOT_THE_SWEEP):
            continue
        value = re.sub(r"^choice\((.*)\)$", r"\1", value)
        parts.append(value if key == "averaging" else f"{key.removeprefix('averaging.')}={value}")
    return "sweep " + (" ".join(parts) or "(defaults)")


def sweep_key(overrides: Sequence[str], experiment: str) -> str:
    """What identifies a sweep's command across re-runs: its overrides (those that change numbers)."""
    from polyexp.core.identity import digest

    return digest({"experiment": experiment, "overrides": sorted(o for o in overrides
                                                                 if not o.startswith(_NOT_THE_SWEEP))})


def open_sweep(config: DictConfig, overrides: list[str], num_jobs: int | None, swept_keys: Sequence[str]) -> Sweep:
    """Open the sweep's parent run, or reopen the one an earlier run of the same command left."""
    from polyexp.run import tracking

    launch_dir = Path(config.hydra.runtime.cwd)
    folder = (launch_dir / config.hydra.sweep.dir).resolve()
    make_folder(folder, "hydra.sweep.dir")
    store = tracking.open_store(config.tracking.uri, config.tracking.experiment, launch_dir)
    key = sweep_key(overrides, config.tracking.experiment)
    tags = {
        tracking.TAG_PREFIX + "role": "sweep",
        tracking.TAG_PREFIX + "sweep_key": key,
        tracking.TAG_PREFIX + "sweep_dir": str(folder),
        tracking.TAG_PREFIX + "overrides": " ".join(overrides),
        **tracking.git_commit(launch_dir),
    }
    earlier = tracking.find_run(store, {"role": "sweep", "sweep_key": key})
    if earlier is None:
        run_id = tracking.guarded(store.client.create_run, store.experiment_id, run_name=sweep_name(overrides),
                                  tags=tags).info.run_id
        log.info("sweep of %s jobs: parent run %s in %s", num_jobs or "?", run_id, store.uri)
    else:
        run_id = earlier.info.run_id
        tracking.reopen_run(store.client, run_id, tags)
        log.info("sweep of %s jobs: continuing under the parent run %s (%s) in %s", num_jobs or "?", run_id,
                 earlier.info.run_name, store.uri)
    sweep = Sweep(folder, run_id, num_jobs, tuple(swept_keys))
    _open_sweeps[folder] = (sweep, store)  # first: a Ctrl-C from here on still ends the parent run
    write_text(folder / SWEEP_FILE, json.dumps({
        "parent_run_id": run_id, "num_jobs": num_jobs, "swept_keys": list(swept_keys),
        "experiment_id": store.experiment_id, "tracking_uri": store.uri,
    }))
    return sweep


def swept_keys_of(overrides: list[str]) -> tuple[str, ...]:
    parsed = OverridesParser.create().parse_overrides(overrides)
    return tuple(o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override())


def finished_run(store: Store, identity: Identity, job: Job) -> JobResult | None:
    """The result of the FINISHED run with this job's identity, if the experiment has one.

    Re-running a sweep's command skips such jobs, so an interrupted sweep resumes where it stopped.
    """
    from polyexp.run import tracking

    found = tracking.find_run(store, {"job_key": identity.key}, status="FINISHED")
    if found is None:
        return None
    run_id = found.info.run_id
    log.info("%s: skipped, its identity already has the FINISHED run %s (%s)", job.label, run_id,
             found.info.run_name)
    metrics = found.data.metrics
    return JobResult(
        "skipped", found.info.run_name, list(job.overrides), run_id=run_id,
        summary={k: v for k, v in metrics.items() if k.startswith(("selected_", "ensemble_selected_"))},
        test_average_acc=tracking.metric_series(store.client, run_id, "test_average_acc"),
        test_rows=int(found.data.tags.get(tracking.TAG_PREFIX + "test_rows", 0)) or None,
    )


def read_sweep(folder: Path) -> Sweep | None:
    """The sweep a job belongs to, or None if it was launched without polyexp's callback."""
    path = folder / SWEEP_FILE
    if not path.exists():
        return None
    found = json.loads(path.read_text())
    return Sweep(folder.resolve(), found["parent_run_id"], found["num_jobs"], tuple(found["swept_keys"]))


def close_sweeps(interrupted: bool = False) -> None:
    """Summarise and end every sweep this process opened and has not closed yet."""
    while _open_sweeps:
        folder, (sweep, store) = next(iter(_open_sweeps.items()))
        try:
            close_sweep(sweep, store, interrupted)
        except Exception:
            del _open_sweeps[folder]
            raise  # a Ctrl-C or SIGTERM while closing leaves it open: the command closes it again, KILLED
        del _open_sweeps[folder]


def close_sweep(sweep: Sweep, store: Store, interrupted: bool = False) -> None:
    from polyexp.run import links, tracking
    from polyexp.run.outputs import write_png
    from polyexp.run.plots import sweep_figure

    interrupted = interrupted or stop.requested() is not None
    end_lost_jobs(store, sweep.parent_run_id, "KILLED" if interrupted else "FAILED")
    reports = [(path.parent.name, read_job_report(path)) for path in sorted(sweep.folder.rglob(JOB_REPORT))]
    reports.sort(key=lambda item: int(item[0]) if item[0].isdigit() else item[0])
    failed = [(job, r) for job, r in reports if r.status == "failed"]
    missing = max(0, (sweep.num_jobs or 0) - len(reports))
    for job, result in failed:
        log.error("sweep: job %s (%s) failed: %s", job, result.run_name, result.error)
    if missing and not interrupted:
        log.error("sweep: %d of %d jobs left no report (lost, or never started)", missing, sweep.num_jobs)

    ranked = rank(reports)
    table = sweep.folder / "sweep_results.csv"
    write_text(table, _table(reports, ranked))
    figure_path = sweep.folder / "sweep_comparison.png"
    scored = [_plot_row(r) for _, r in ranked]
    if scored:
        write_png(figure_path, sweep_figure(scored, next((r.test_rows for _, r in ranked if r.test_rows), None)))
        print_ranking(ranked)

    run_id, client = sweep.parent_run_id, store.client
    counts = {status: sum(r.status == status for _, r in reports) for status in ("finished", "skipped", "failed")}
    status = "KILLED" if interrupted else "FAILED" if failed or missing else "FINISHED"
    try:
        tracking.log_metrics(client, run_id, [(f"jobs_{k}", v, 0) for k, v in counts.items()]
                             + [("jobs_missing", missing, 0)])
        if failed:
            summary = "\n".join(f"job {job} ({r.run_name}): {r.error}" for job, r in failed)
            tracking.log_tags(client, run_id, {"failed_jobs": summary[:5000]})
        for path in (table, figure_path) if scored else (table,):
            tracking.guarded(client.log_artifact, run_id, str(path))
    except Exception as exc:
        log.warning("could not log the sweep summary to run %s: %s (it is in %s)", run_id, exc, sweep.folder)
    tracking.end_run(client, run_id, status)
    if status == "FAILED":
        failed_sweeps.append(sweep.folder)
    log.info("sweep %s: %s; summary in %s", status, ", ".join(f"{v} {k}" for k, v in counts.items()),
             sweep.folder)
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


def rank(reports: list[tuple[str, JobResult]]) -> list[tuple[str, JobResult]]:
    """The jobs with a validation score, best first (what the sweep selects on: validation only)."""
    scored = [(job, r) for job, r in reports if r.selected_val_acc is not None]
    return sorted(scored, key=lambda item: -item[1].selected_val_acc)


def print_ranking(ranked: list[tuple[str, JobResult]]) -> None:
    """The sweep's summary table on stdout: jobs ranked on validation, with their test numbers."""
    from polyexp.run.outputs import summary_interval

    width = max(len(r.run_name) for _, r in ranked)
    print(f"\nsweep: {len(ranked)} jobs ranked on validation; test accuracy of each job's selected n "
          "(mean over seeds [95% CI])")
    print(f"  {'rank':<5}{'job':<{width + 2}}{'n':>3}  {'val':<7}{'test':<24}gain over the last checkpoint")
    for place, (_, r) in enumerate(ranked, start=1):
        s = r.summary
        print(f"  {place:<5}{r.run_name:<{width + 2}}{int(s['selected_n']):>3}  {s['selected_val_acc']:<7.3f}"
              f"{summary_interval(s, 'selected_test_acc'):<24}{summary_interval(s, 'selected_gain_vs_last', True)}")
    sys.stdout.flush()


def _plot_row(result: JobResult) -> dict[str, Any]:
    s = result.summary
    return {"name": result.run_name, "selected_val_acc": s["selected_val_acc"],
            **{f"selected_test_acc{p}": s.get(f"selected_test_acc{p}", float("nan"))
               for p in ("", "_ci_low", "_ci_high")},
            "test_average_acc": result.test_average_acc}


def _table(reports: list[tuple[str, JobResult]], ranked: list[tuple[str, JobResult]]) -> str:
    from polyexp.run.outputs import csv_text

    places = {job: i for i, (job, _) in enumerate(ranked, start=1)}
    k = max((len(r.test_average_acc) for _, r in reports), default=0)
    numbers = [f"{key}{part}" for key in ("selected_val_acc", "selected_test_acc", "selected_gain_vs_last")
               for part in ("", "_ci_low", "_ci_high")]
    header = ["job", "rank", "run_name", "status", "run_id", "trajectory", "selected_n", *numbers, "error",
              *(f"test_average_acc_{n}" for n in range(1, k + 1))]
    return csv_text(header, (
        [job, places.get(job, ""), r.run_name, r.status, r.run_id or "", r.trajectory or "",
         r.summary.get("selected_n", ""), *(r.summary.get(key, "") for key in numbers), r.error or "",
         *r.test_average_acc]
        for job, r in sorted(reports, key=lambda item: places.get(item[0], len(places) + 1))))
