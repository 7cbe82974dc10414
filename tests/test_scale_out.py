"""Scale-out through Hydra's own launchers and a real MLflow server on loopback; installed plugins."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, Cli, make_cli, metric_steps, table

pytestmark = pytest.mark.slow

SMALL = ("epochs=50",)


def sweep_runs(client, experiment: str = "polyexp") -> tuple[list, list]:
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])
    parents = [r for r in runs if r.data.tags.get("polyexp.role") == "sweep"]
    return parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_joblib_runs_a_sweep_in_parallel_workers_against_a_fresh_store(tmp_path):
    cli = make_cli(tmp_path)  # no store yet: the jobs must not race to create it
    alphas = "1,2,3,4,5,6"
    result = cli.run("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "averaging=exp",
                     f"averaging.alpha={alphas}", *SMALL, "-m")
    assert result.returncode == 0, result.stderr
    (parent,), jobs = sweep_runs(cli.client())
    assert parent.info.status == "FINISHED" and parent.data.metrics["jobs_finished"] == 6
    assert sorted(r.info.run_name for r in jobs) == [f"exp alpha={a}" for a in alphas.split(",")]
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert all(r.info.status == "FINISHED" for r in jobs)
    assert {r.data.tags["polyexp.threads"] for r in jobs} == {str(max(1, (os.cpu_count() or 1) // 2))}
    assert sorted(r.data.tags["polyexp.trajectory"] for r in jobs).count("trained") == 1


def test_submitit_local_runs_each_job_in_its_own_process(cli: Cli):
    result = cli.run("hydra/launcher=submitit_local", "averaging=exp", "averaging.alpha=1,2", *SMALL, "-m")
    assert result.returncode == 0, result.stderr
    (parent,), jobs = sweep_runs(cli.client())
    assert parent.info.status == "FINISHED"
    assert sorted(r.info.run_name for r in jobs) == ["exp alpha=1", "exp alpha=2"]
    assert all(r.info.status == "FINISHED" for r in jobs)
    assert list((cli.workdir / "multirun").rglob(".submitit"))


def test_the_slurm_example_composes(cli: Cli):
    result = cli.run("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra", "--package",
                     "hydra.launcher")
    assert result.returncode == 0, result.stderr
    assert "SlurmLauncher" in result.stdout and "partition: gpu" in result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
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
        assert sorted(metric_steps(client, run.info.run_id, "ensemble_acc")) == list(range(1, 11))
        assert sorted(metric_steps(client, run.info.run_id, "train_loss")) == list(range(1, 51))
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"results.csv", "checkpoints.npz", "averaged_model.keras", "plots"} <= names
    path = client.download_artifacts(jobs[0].info.run_id, "results.csv", str(tmp_path))
    assert Path(path).read_text().startswith("n,epoch,single_acc")
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"sweep_results.csv", "sweep_comparison.png"}


def test_an_unreachable_server_fails_fast_and_clearly(cli: Cli):
    uri = f"http://127.0.0.1:{free_port()}"
    for args in ([], ["averaging=exp", "averaging.alpha=1,2", "-m"]):
        started = time.monotonic()
        result = cli.run(*SMALL, *args, env={"MLFLOW_TRACKING_URI": uri}, timeout=120)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert f"cannot reach the MLflow tracking server at {uri}" in result.stderr
        assert time.monotonic() - started < 30


def test_a_server_lost_mid_run_fails_within_seconds_and_keeps_the_results(cli: Cli, mlflow_server):
    from mlflow import MlflowClient

    uri, server = mlflow_server
    job = cli.start("epochs=5000", env={"MLFLOW_TRACKING_URI": uri})
    client = MlflowClient(uri)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = client.get_experiment_by_name("polyexp")
        if found and client.search_runs([found.experiment_id]):
            break
        assert job.poll() is None, job.communicate()[0]
        time.sleep(0.2)
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(10)
    killed = time.monotonic()
    output, _ = job.communicate(timeout=120)
    assert time.monotonic() - killed < 60
    assert job.returncode != 0 and "Traceback" not in output
    assert "MLflow" in output and "failed" in output
    (folder,) = [p.parent for p in (cli.workdir / "outputs").rglob("polyexp_job.json")]
    assert (folder / "results.csv").exists() and (folder / "checkpoints.npz").exists()
    assert json.loads((folder / "polyexp_job.json").read_text())["status"] == "failed"


@pytest.fixture(scope="module")
def harmonic_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(ROOT / "examples" / "polyexp-harmonic")],
        check=True, capture_output=True,
    )
    return site


def test_an_installed_plugin_package_is_listed_with_its_source(cli: Cli, harmonic_site):
    env = {**cli.env, "PYTHONPATH": str(harmonic_site)}
    listing = subprocess.run([sys.executable, "-m", "polyexp.plugins", "averaging"], env=env,
                             capture_output=True, text=True, check=True).stdout
    assert "harmonic  [package polyexp-harmonic 0.1.0]  Member i (1 = the latest) weighs 1 / i**power." in listing
    assert "power: float = 1.0 (> 0)" in listing
    assert "exp  [built in]" in listing and "alpha: float = 2.0 (> 0)" in listing


def test_an_installed_plugin_is_selected_from_the_command_line(cli: Cli, harmonic_site):
    result = cli.run("averaging=harmonic", "averaging.power=2", "epochs=30", env={"PYTHONPATH": str(harmonic_site)})
    assert result.returncode == 0, result.stderr
    assert len(table(result.stdout)) == 10
    (run,) = cli.runs()
    assert run.info.run_name == "harmonic power=2" and run.data.params["averaging.power"] == "2.0"
    (folder,) = [p.parent for p in (cli.workdir / "outputs").rglob("weights.json")]
    weights = json.loads((folder / "weights.json").read_text())["weights"]["3"]
    assert weights == pytest.approx([36 / 49, 9 / 49, 4 / 49])
    bad = cli.run("averaging=harmonic", "averaging.power=0", env={"PYTHONPATH": str(harmonic_site)})
    assert "averaging.power=0.0 is not allowed: it must be > 0" in bad.stderr
