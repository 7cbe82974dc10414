"""A job's files logged as MLflow artifacts: hard links where the store is a local folder on the same
disk (stored once), copies anywhere else. A real SQLite store, real files."""

import os
import shutil
from pathlib import Path

import pytest

from polyexp.run.tracking import local_artifact_dir, log_folder


def job_folder(root: Path) -> Path:
    folder = root / "job"
    (folder / "plots").mkdir(parents=True)
    (folder / "checkpoints.npz").write_bytes(os.urandom(50_000))
    (folder / "plots" / "accuracy_vs_n.png").write_bytes(b"png" * 100)
    (folder / "summary.json").write_text("{}")
    return folder


def files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}


def store_with_artifacts_in(tmp_path: Path, empty_store: Path, artifacts: Path):
    from mlflow import MlflowClient

    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("polyexp", artifact_location=str(artifacts))
    return client, client.create_run(experiment).info.run_id


def test_a_local_artifact_store_holds_the_job_s_files_once(tmp_path, empty_store):
    client, run_id = store_with_artifacts_in(tmp_path, empty_store, tmp_path / "mlartifacts")
    folder = job_folder(tmp_path)
    log_folder(client, run_id, folder)
    logged = Path(client.download_artifacts(run_id, "", str(tmp_path / "download")))
    assert {name: p.read_bytes() for name, p in files(logged).items()} == \
           {name: p.read_bytes() for name, p in files(folder).items()}
    stored = tmp_path / "mlartifacts" / run_id / "artifacts"
    for name, path in files(folder).items():
        assert os.path.samefile(path, stored / name) and path.stat().st_nlink == 2  # one copy on disk
    log_folder(client, run_id, folder)  # logging again (a resumed job) links again, never a file onto itself
    assert all(os.path.samefile(path, stored / name) for name, path in files(folder).items())


def test_an_artifact_store_on_another_file_system_gets_copies(tmp_path, empty_store):
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system here")
    artifacts = Path(os.path.join(other, f"polyexp-test-{os.getpid()}"))
    try:
        client, run_id = store_with_artifacts_in(tmp_path, empty_store, artifacts)
        folder = job_folder(tmp_path)
        log_folder(client, run_id, folder)
        stored = artifacts / run_id / "artifacts"
        for name, path in files(folder).items():
            assert (stored / name).read_bytes() == path.read_bytes() and path.stat().st_nlink == 1
    finally:
        shutil.rmtree(artifacts, ignore_errors=True)


def test_only_local_artifact_locations_are_linked():
    assert local_artifact_dir("/data/mlartifacts/1/abc/artifacts") == Path("/data/mlartifacts/1/abc/artifacts")
    assert local_artifact_dir("file:///data/ml%20artifacts/abc") == Path("/data/ml artifacts/abc")
    assert local_artifact_dir("mlflow-artifacts:/1/abc/artifacts") is None
    assert local_artifact_dir("s3://bucket/abc") is None


@pytest.mark.parametrize("failing_job", [False, True], ids=["the artifacts fail the run", "the run failed already"])
def test_artifacts_that_cannot_be_written_leave_no_run_running(tmp_path, empty_store, caplog, failing_job):
    """A file where the artifact folder should be: every artifact write fails, as on a read-only folder."""
    from polyexp.core.errors import TrackingError
    from polyexp.run import tracking

    (tmp_path / "mlartifacts").write_text("not a folder")
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    store = tracking.open_store(f"sqlite:///{tmp_path / 'mlflow.db'}", "polyexp", tmp_path)
    with pytest.raises((TrackingError, RuntimeError)), tracking.tracked_run(store, "job", {}) as run_id:
        if failing_job:
            raise RuntimeError("the job's own error")
        log_folder(store.client, run_id, job_folder(tmp_path))
    run = store.client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["polyexp.error"].startswith("RuntimeError: the job" if failing_job else "")
    assert any("could not write error.txt" in r.getMessage() for r in caplog.records)
