"""Resuming: a job whose identity already has a FINISHED run is skipped, its result that run's own.

The runner logs each finished job's report (``polyexp_job.json``) with the run, so a skipped job's
result is the one the run made, read back whole, not rebuilt from its metrics. When the earlier run
belongs to another sweep (or none), the result says which run it is (``reused``) and the job's
folder links to the earlier outputs (``reused_outputs``), so the new sweep shows and reaches it::

    result = finished_run(store, job_identity(plan), job, "exp alpha=2")
    result.status, result.reused    # "skipped", {"run_id": ..., "parent": "sweep exp alpha=1,2", ...}
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path

from polyexp.core.identity import Identity
from polyexp.run import tracking
from polyexp.run.job import JOB_REPORT, Job, JobResult, read_job_report

log = logging.getLogger(__name__)

REUSED_OUTPUTS = "reused_outputs"  # in a skipped job's folder: a link to the earlier run's folder


def finished_run(store: tracking.Store, identity: Identity, job: Job, name: str) -> JobResult | None:
    """The result of the FINISHED run with this job's identity, as this job's; None if there is none."""
    from mlflow.exceptions import MlflowException

    found = tracking.find_run(store, {"job_key": identity.key}, status="FINISHED")
    if found is None:
        return None
    run_id = found.info.run_id
    try:
        with tempfile.TemporaryDirectory() as folder:
            earlier = read_job_report(Path(store.client.download_artifacts(run_id, JOB_REPORT, folder)))
    except (OSError, MlflowException):  # logged before runs carried their report: run the job again
        return None
    log.info("%s: skipped, its identity already has the FINISHED run %s (%s)", job.label, run_id,
             found.info.run_name)
    return dataclasses.replace(earlier, status="skipped", run_name=name, overrides=list(job.overrides),
                               number=job.position, reused=_reused(store, found, job))


def _reused(store: tracking.Store, found: object, job: Job) -> dict[str, str] | None:
    """Which earlier run a skipped job is, when it is not already a child of this job's sweep."""
    tags = found.data.tags  # type: ignore[attr-defined]
    parent_id = tags.get("mlflow.parentRunId")
    if job.sweep is not None and parent_id == job.sweep.parent_run_id:
        return None
    parent = tracking.guarded(store.client.get_run, parent_id).info.run_name if parent_id else ""
    output_dir = tags.get(tracking.TAG_PREFIX + "output_dir", "")
    if output_dir and Path(output_dir).is_dir() and Path(output_dir).resolve() != job.output_dir.resolve():
        job.output_dir.mkdir(parents=True, exist_ok=True)
        link = job.output_dir / REUSED_OUTPUTS
        link.unlink(missing_ok=True)
        link.symlink_to(Path(output_dir).resolve(), target_is_directory=True)
    return {"run_id": found.info.run_id, "run_name": found.info.run_name,  # type: ignore[attr-defined]
            "parent": parent, "output_dir": output_dir}
