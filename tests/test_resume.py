"""A skipped job's result is the earlier run's own report (run/resume), read from a real SQLite store."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from polyexp.core.identity import Identity
from polyexp.run import tracking
from polyexp.run.job import JOB_REPORT, Job, JobResult, Sweep
from polyexp.run.resume import REUSED_OUTPUTS, finished_run


def test_a_skipped_job_is_the_earlier_runs_report_and_links_to_its_outputs(tmp_path: Path, empty_store: Path):
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    store = tracking.open_store(f"sqlite:///{tmp_path / 'mlflow.db'}", "polyexp", tmp_path)
    identity = Identity({"averaging": {"name": "exp", "alpha": 2.0}}, {}, {}, {})
    earlier_dir = tmp_path / "earlier" / "1"
    earlier_dir.mkdir(parents=True)
    (earlier_dir / "summary.json").write_text("{}")
    report = JobResult("finished", "alpha=2", ["averaging.alpha=2"], run_id="x", trajectory="trained",
                       summary={"selected_n": 8, "selected_val_acc": 0.8}, test_average_acc=[0.7, 0.8],
                       test_rows=500, number=2)
    (earlier_dir / JOB_REPORT).write_text(json.dumps(asdict(report)))
    client = store.client
    run_id = client.create_run(store.experiment_id, run_name="exp alpha=2", tags={
        "polyexp.job_key": identity.key, "polyexp.output_dir": str(earlier_dir)}).info.run_id
    client.log_artifact(run_id, str(earlier_dir / JOB_REPORT))
    client.log_metric(run_id, "selected_n", 8)  # MLflow keeps it as 8.0: not what the result is read from

    sweep = Sweep(tmp_path / "new", "another-parent", 3, ("averaging.alpha",))
    job = Job(tmp_path / "new" / "0", tmp_path, ("averaging=exp", "averaging.alpha=2"), sweep, number=0)
    assert finished_run(store, identity, job, "exp alpha=2") is None  # still RUNNING: not finished
    client.set_terminated(run_id, "FINISHED")

    result = finished_run(store, identity, job, "exp alpha=2")
    assert result is not None and result.status == "skipped" and result.run_name == "exp alpha=2"
    assert result.summary == report.summary and type(result.summary["selected_n"]) is int
    assert result.test_average_acc == [0.7, 0.8] and result.test_rows == 500 and result.trajectory == "trained"
    assert result.number == 1 and result.overrides == ["averaging=exp", "averaging.alpha=2"]
    assert result.reused == {"run_id": run_id, "run_name": "exp alpha=2", "parent": "", "output_dir": str(earlier_dir)}
    link = job.output_dir / REUSED_OUTPUTS
    assert link.is_symlink() and (link / "summary.json").is_file()

    in_its_own_sweep = Job(job.output_dir, tmp_path, job.overrides, Sweep(sweep.folder, run_id, 3, ()), number=0)
    client.set_tag(run_id, "mlflow.parentRunId", run_id)
    assert finished_run(store, identity, in_its_own_sweep, "exp alpha=2").reused is None


def test_an_interrupted_job_says_why():
    from polyexp.run.stop import Terminated
    from polyexp.task import failure_reason

    assert failure_reason(KeyboardInterrupt()) == "interrupted (Ctrl-C)"
    assert failure_reason(Terminated(143)) == "terminated (SIGTERM)"
    assert failure_reason(ValueError()) == "ValueError" and failure_reason(ValueError("bad")) == "bad"
