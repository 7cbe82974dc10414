"""A job's report (``polyexp_job.json``): written once, by one owner, for a run, a skipped and a failed job.

``app.run_or_skip`` is called directly on a composed config, against a real SQLite store: no subprocess.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import compose
from hydra.errors import CompactHydraException

from polyexp.core import files
from polyexp.core.errors import TrackingError
from polyexp.run import tracking
from polyexp.run.job import JOB_REPORT, Job, Sweep, read_job_report

JOB = ["epochs=5", "window.size=3", "data.n_val=50", "cache.enabled=false"]


@pytest.fixture
def reports(monkeypatch) -> list[Path]:
    """Every report written, in order: the one function that writes them writes through ``write_text``."""
    written: list[Path] = []

    def write_text(path: Path, text: str) -> None:
        if Path(path).name == JOB_REPORT:
            written.append(Path(path))
        files.write_text(path, text)

    monkeypatch.setattr("polyexp.run.job.write_text", write_text)
    return written


@pytest.fixture
def store(tmp_path: Path, empty_store: Path) -> tracking.Store:
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    return tracking.open_store(f"sqlite:///{tmp_path / 'mlflow.db'}", "polyexp", tmp_path)


def config(store: tracking.Store, *overrides: str):
    return compose([*JOB, f"tracking.uri={store.uri}", *overrides])


def logged_report(store: tracking.Store, run_id: str, folder: Path) -> str:
    return Path(store.client.download_artifacts(run_id, JOB_REPORT, str(folder))).read_text()


def same(a, b) -> bool:
    """Equal field by field, NaN (an interval of one seed) equal to NaN."""
    return json.dumps(asdict(a), sort_keys=True) == json.dumps(asdict(b), sort_keys=True)


def test_a_run_a_skipped_and_a_failed_job_each_write_their_report_once(tmp_path, store, reports):
    from polyexp.task import run_or_skip

    run = Job(tmp_path / "run", tmp_path, ("averaging=exp",))
    result = run_or_skip(config(store, "averaging=exp"), run)
    assert reports == [run.output_dir / JOB_REPORT]
    report = read_job_report(run.output_dir / JOB_REPORT)
    assert same(report, result) and report.status == "finished" and report.run_name == "exp"
    assert report.number is None and report.error is None and report.trajectory == "trained"
    assert len(report.test_average_acc) == 3 and report.summary["selected_n"] in (1, 2, 3)
    assert store.client.get_run(report.run_id).info.status == "FINISHED"
    # the run's report is the folder's, logged with the run
    assert logged_report(store, report.run_id, tmp_path / "logged") == (run.output_dir / JOB_REPORT).read_text()

    reports.clear()
    sweep = Sweep(tmp_path / "sweep", "this-sweeps-parent", 2, ("averaging",))
    skipped = Job(sweep.folder / "1", tmp_path, ("averaging=exp",), sweep, number=1)
    result = run_or_skip(config(store, "averaging=exp"), skipped)
    assert reports == [skipped.output_dir / JOB_REPORT]
    again = read_job_report(skipped.output_dir / JOB_REPORT)
    assert same(again, result) and again.status == "skipped" and again.number == 2
    assert again.run_id == report.run_id and json.dumps(again.summary) == json.dumps(report.summary)
    assert again.test_average_acc == report.test_average_acc
    assert again.reused == {"run_id": report.run_id, "run_name": "exp", "parent": "",
                            "output_dir": str(run.output_dir)}
    assert len(store.client.search_runs([store.experiment_id])) == 1  # nothing ran

    reports.clear()
    failed = Job(sweep.folder / "0", tmp_path, ("epochs=0",), sweep, number=0)
    with pytest.raises(CompactHydraException, match=r"epochs=0"):
        run_or_skip(config(store, "epochs=0"), failed)
    assert reports == [failed.output_dir / JOB_REPORT]
    report = read_job_report(failed.output_dir / JOB_REPORT)
    assert report.status == "failed" and report.run_name == "equal" and report.number == 1
    assert "epochs=0" in report.error and report.run_id is None and report.summary == {}


def test_a_run_whose_logging_fails_after_its_report_leaves_the_failed_report(tmp_path, store, reports, monkeypatch):
    from polyexp.task import run_or_skip

    def refuse(*args, **kwargs):
        raise TrackingError("the artifact store is gone")

    monkeypatch.setattr(tracking, "log_folder", refuse)
    job = Job(tmp_path / "run", tmp_path)
    with pytest.raises(SystemExit, match=r"^the artifact store is gone$"):  # a single run's one line, exit status 1
        run_or_skip(config(store), job)
    assert reports == [job.output_dir / JOB_REPORT] * 2  # the runner's, then the failure's in its place
    report = read_job_report(job.output_dir / JOB_REPORT)
    assert report.status == "failed" and report.error == "the artifact store is gone" and report.run_id is None
    (run,) = store.client.search_runs([store.experiment_id])
    assert run.info.status == "FAILED"
