"""Sweeps: one MLflow parent run per Hydra multirun, summarising its jobs.

:class:`LaunchCallback` (enabled in ``conf/config.yaml``) runs in the launching process. Before any job
starts it creates the tracking store, the experiment and the parent run, so parallel jobs never race
to create a fresh SQLite store, and writes ``polyexp_sweep.json`` into the sweep folder, where each
job finds its parent. When the sweep ends, the parent gets a comparison plot (ensemble accuracy
against n, one line per job), a table of the jobs, and which jobs failed and why, read from the
reports the jobs leave in their folders. Hydra skips ``on_multirun_end`` when a job fails, so
``polyexp.app.cli`` closes any sweep still open when Hydra returns.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from polyexp.config import Plan
from polyexp.errors import PolyexpError
from polyexp.files import atomic_write, make_folder, write_text
from polyexp.job import JOB_REPORT, Job, JobResult, Sweep, read_job_report

if TYPE_CHECKING:
    from polyexp.tracking import Store

log = logging.getLogger(__name__)

SWEEP_FILE = "polyexp_sweep.json"
_BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"

_open_sweeps: dict[Path, tuple[Sweep, Any]] = {}  # folder -> (sweep, MLflow client)


class LaunchCallback(Callback):
    """Hydra callback: check a run's output folder first; open and close a sweep's parent run."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with _stop_on_error():
            make_folder(Path(config.hydra.runtime.cwd) / config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with _stop_on_error():
            open_sweep(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        close_sweeps()


# MLflow and matplotlib load inside the functions: Hydra builds this callback for every command,
# and a single run with a bad config should fail without waiting for them.


@contextlib.contextmanager
def _stop_on_error() -> Iterator[None]:
    # Hydra turns a callback's exceptions into warnings and carries on; these must stop the command.
    try:
        yield
    except PolyexpError as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise SystemExit(1) from exc
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None


def open_sweep(config: DictConfig) -> Sweep:
    from polyexp import tracking

    launch_dir = Path(config.hydra.runtime.cwd)
    folder = (launch_dir / config.hydra.sweep.dir).resolve()
    make_folder(folder, "hydra.sweep.dir")
    overrides = list(config.hydra.overrides.task)
    num_jobs, swept_keys = count_jobs(config, overrides)
    store = tracking.open_store(config.tracking.uri, config.tracking.experiment, launch_dir)
    tags = {
        tracking.TAG_PREFIX + "role": "sweep",
        tracking.TAG_PREFIX + "sweep_dir": str(folder),
        tracking.TAG_PREFIX + "overrides": " ".join(overrides),
        **tracking.git_commit(launch_dir),
    }
    name = "sweep " + " ".join(overrides)
    run = tracking.guarded(store.client.create_run, store.experiment_id, run_name=name, tags=tags)
    sweep = Sweep(folder, run.info.run_id, num_jobs, swept_keys)
    write_text(folder / SWEEP_FILE, json.dumps({
        "parent_run_id": sweep.parent_run_id, "num_jobs": num_jobs, "swept_keys": list(swept_keys),
    }))
    _open_sweeps[folder] = (sweep, store.client)
    log.info("sweep of %s jobs, parent run %s in %s", num_jobs or "?", sweep.parent_run_id, store.uri)
    return sweep


def finished_run(store: Store, experiment: Plan, job: Job) -> JobResult | None:
    """The result of the FINISHED run with this job's exact config, if the experiment has one.

    Re-running a sweep's command skips such jobs, so an interrupted sweep resumes where it stopped.
    """
    from polyexp import tracking

    found = tracking.find_finished_run(store, experiment.config_hash)
    if found is None:
        return None
    run_id = found.info.run_id
    log.info("%s: skipped, its config already has the FINISHED run %s (%s)", job.label, run_id, found.info.run_name)
    return JobResult(
        "skipped", found.info.run_name, list(job.overrides), run_id=run_id,
        single_acc=tracking.metric_series(store.client, run_id, "single_acc"),
        ensemble_acc=tracking.metric_series(store.client, run_id, "ensemble_acc"),
    )


def read_sweep(folder: Path) -> Sweep | None:
    """The sweep a job belongs to, or None if it was launched without polyexp's callback."""
    path = folder / SWEEP_FILE
    if not path.exists():
        return None
    found = json.loads(path.read_text())
    return Sweep(folder.resolve(), found["parent_run_id"], found["num_jobs"], tuple(found["swept_keys"]))


def count_jobs(config: DictConfig, overrides: list[str]) -> tuple[int | None, tuple[str, ...]]:
    """How many jobs the sweep will run (None if the sweeper cannot tell), and the swept keys."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    parsed = OverridesParser.create().parse_overrides(overrides)
    swept = tuple(o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override())
    sweeper = config.hydra.sweeper
    if sweeper.get("_target_") != _BASIC_SWEEPER or sweeper.get("params"):
        return None, swept
    return len(BasicSweeper.split_arguments(parsed, None)[0]), swept


def close_sweeps(interrupted: bool = False) -> None:
    """Summarise and end every sweep this process opened and has not closed yet."""
    while _open_sweeps:
        _, (sweep, client) = _open_sweeps.popitem()
        close_sweep(sweep, client, interrupted)


def close_sweep(sweep: Sweep, client: Any, interrupted: bool = False) -> None:
    from polyexp import plots, tracking, ui

    reports = [(path.parent.name, read_job_report(path)) for path in sorted(sweep.folder.rglob(JOB_REPORT))]
    reports.sort(key=lambda item: int(item[0]) if item[0].isdigit() else item[0])
    failed = [(job, r) for job, r in reports if r.status == "failed"]
    missing = max(0, (sweep.num_jobs or 0) - len(reports))
    for job, result in failed:
        log.error("sweep: job %s (%s) failed: %s", job, result.run_name, result.error)

    table = sweep.folder / "sweep_results.csv"
    write_text(table, _table(reports))
    lines = {r.run_name: r.ensemble_acc for _, r in reports if r.ensemble_acc}
    distinct = {tuple(r.single_acc): r.run_name for _, r in reports if r.single_acc}
    singles = {
        f"single checkpoints ({name})" if len(distinct) > 1 else "single checkpoints": list(values)
        for values, name in distinct.items()
    }
    figure_path = sweep.folder / "sweep_comparison.png"
    figure = plots.sweep_figure(lines, singles)
    atomic_write(figure_path, lambda handle: figure.savefig(handle, format="png"))

    run_id = sweep.parent_run_id
    counts = {status: sum(r.status == status for _, r in reports) for status in ("finished", "skipped", "failed")}
    status = "KILLED" if interrupted else "FAILED" if failed or missing else "FINISHED"
    try:
        tracking.log_metrics(client, run_id, [(f"jobs_{k}", v, 0) for k, v in counts.items()]
                             + [("jobs_missing", missing, 0)])
        if failed:
            summary = "\n".join(f"job {job} ({r.run_name}): {r.error}" for job, r in failed)
            tracking.log_tags(client, run_id, {"failed_jobs": summary[:5000]})
        for path in (table, figure_path):
            tracking.guarded(client.log_artifact, run_id, str(path))
    except Exception as exc:
        log.warning("could not log the sweep summary to run %s: %s (it is in %s)", run_id, exc, sweep.folder)
    tracking.end_run(client, run_id, status)
    log.info("sweep %s: %s; summary in %s", status, ", ".join(f"{v} {k}" for k, v in counts.items()),
             sweep.folder)
    with contextlib.suppress(Exception):  # a store that is gone was reported above
        log.info("%s", ui.run_view_hint(client, run_id))


def _table(reports: list[tuple[str, JobResult]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    k = max((len(r.ensemble_acc) for _, r in reports), default=0)
    writer.writerow(["job", "run_name", "status", "run_id", "trajectory", "best_ensemble_acc",
                     "best_ensemble_n", "error", *(f"ensemble_acc_{n}" for n in range(1, k + 1))])
    for job, r in reports:
        best = r.best_ensemble_acc
        best_n = r.ensemble_acc.index(best) + 1 if best is not None else ""
        writer.writerow([job, r.run_name, r.status, r.run_id or "", r.trajectory or "",
                         "" if best is None else best, best_n, r.error or "", *r.ensemble_acc])
    return buffer.getvalue()
