"""A shared MLflow tracking server, real and on loopback: logging to it, and losing it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import Cli, free_port, metric_steps, sweep_runs

pytestmark = pytest.mark.slow

SMALL = ("epochs=50",)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("server")
    port = free_port()
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    process = subprocess.Popen(
        [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=1):
                break
        except OSError:
            assert process.poll() is None, "mlflow server exited"
            time.sleep(0.3)
    else:
        raise AssertionError("mlflow server did not start")
    yield uri, process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def test_a_sweep_logs_to_a_shared_tracking_server(cli: Cli, mlflow_server, tmp_path):
    from mlflow import MlflowClient

    uri, _ = mlflow_server
    result = cli.run("averaging=exp", "averaging.alpha=1,2", *SMALL, "-m", env={"MLFLOW_TRACKING_URI": uri})
    assert result.returncode == 0, result.stderr
    assert not cli.store.exists() or cli.runs() == []  # nothing went to the local store
    client = MlflowClient(uri)
    (parent,), jobs = sweep_runs(client)
    assert parent.info.status == "FINISHED" and [r.info.run_name for r in jobs] == ["exp alpha=1", "exp alpha=2"]
    for run in jobs:
        assert sorted(metric_steps(client, run.info.run_id, "test_average_acc")) == list(range(1, 11))
        assert sorted(metric_steps(client, run.info.run_id, "train_loss")) == list(range(1, 51))
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"results.csv", "checkpoints.npz", "averaged_model.keras", "plots"} <= names
    path = client.download_artifacts(jobs[0].info.run_id, "results.csv", str(tmp_path))
    assert Path(path).read_text().startswith("seed,n,epoch,val_single_acc")
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"sweep_results.csv", "sweep_comparison.png"}


def test_an_unreachable_server_fails_fast_and_clearly(cli: Cli):
    uri = f"http://127.0.0.1:{free_port()}"
    for args in ([], ["averaging=exp", "averaging.alpha=1,2", "-m"]):
        # MLflow's own retries would take minutes (7, backing off to 64 s); the limit catches those, not a busy machine
        result = cli.run(*SMALL, *args, env={"MLFLOW_TRACKING_URI": uri}, timeout=120)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert f"cannot reach the MLflow tracking server at {uri}" in result.stderr


def test_credentials_in_the_uri_reach_the_server_and_nothing_else(cli: Cli, mlflow_server, tmp_path):
    """MLflow's client accepts ``http://user:password@host``: polyexp uses it, and shows the password
    nowhere: not in what the commands print, a file they write, a param, a tag or an artifact."""
    from mlflow import MlflowClient

    uri, _ = mlflow_server
    secret = "S3cret-Pw"
    given = uri.replace("http://", f"http://alice:{secret}@")
    common = (f"tracking.uri={given}", "tracking.experiment=credentials", *SMALL)
    single = cli.run(*common)
    sweep = cli.run(*common, "averaging=exp", "averaging.alpha=1,2", "-m")
    failed = cli.run(*common, "averaging=exp", "averaging.alpha=-1")
    assert single.returncode == 0 and sweep.returncode == 0, single.stderr + sweep.stderr
    assert failed.returncode != 0 and "averaging.alpha=-1.0 is not allowed" in failed.stderr
    for result in (single, sweep, failed):
        assert secret not in result.stdout + result.stderr
    written = [p for p in cli.workdir.rglob("*") if p.is_file()]
    assert any(p.name == "overrides.yaml" for p in written) and any(p.name == "multirun.yaml" for p in written)
    assert [p for p in written if secret.encode() in p.read_bytes()] == []

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("credentials").experiment_id])
    assert len(runs) == 4  # the single job, the sweep's parent and its 2 jobs
    for run in runs:
        assert secret not in json.dumps([run.data.params, run.data.tags])
        folder = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / run.info.run_id)))
        assert [p for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()] == []
    job = next(r for r in runs if "polyexp.role" not in r.data.tags)
    assert job.data.params["tracking.uri"] == uri.replace("http://", "http://alice:***@")


def test_a_server_lost_mid_run_fails_within_seconds_and_keeps_the_results(cli: Cli, mlflow_server):
    """Kills the module's server: the last test of this file to use it."""
    from mlflow import MlflowClient

    uri, server = mlflow_server
    job = cli.start("epochs=5000", "tracking.experiment=lost", env={"MLFLOW_TRACKING_URI": uri})
    client = MlflowClient(uri)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = client.get_experiment_by_name("lost")
        runs = client.search_runs([found.experiment_id]) if found else []
        if runs and runs[0].data.params:  # its parameters are in: the job is training, not yet logging
            break
        assert job.poll() is None, job.communicate()[0]
        time.sleep(0.2)
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(10)
    output, _ = job.communicate(timeout=120)  # not MLflow's minutes of retries
    assert job.returncode != 0 and "Traceback" not in output
    assert "MLflow" in output and "failed" in output
    (folder,) = [p.parent for p in (cli.workdir / "outputs").rglob("polyexp_job.json")]
    assert (folder / "results.csv").exists() and (folder / "checkpoints.npz").exists()
    assert json.loads((folder / "polyexp_job.json").read_text())["status"] == "failed"

