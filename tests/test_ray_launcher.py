"""Hydra's Ray launcher: a sweep on a local Ray cluster that the launcher starts and shuts down, and
on a Ray cluster that is already running.

Every process that a command starts inherits its environment, Ray's too (the cluster's daemons from
the process that starts it, the workers from the cluster), so a marker variable finds them all, even
the workers that rename themselves ``ray::...``.
"""

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import free_port, make_cli, processes_with, sweep_runs
from omegaconf import OmegaConf

from polyexp.task import parallel_workers

JOB_FILES = {"results.csv", "results_mean.csv", "summary.json", "history.csv", "weights.json", "checkpoints.npz",
             "averaged_model.keras", "identity.json", "plots", "config.yaml", ".hydra", "polyexp.log",
             "polyexp_job.json"}
SWEEP_FILES = {"multirun.yaml", "polyexp_sweep.json", "sweep_results.csv", "sweep_comparison.png"}
CORES = os.cpu_count() or 1


@pytest.mark.parametrize(("launcher", "workers"), [
    ({}, 1),  # the basic launcher: one job after the other
    ({"n_jobs": 3}, 3),
    ({"n_jobs": -1}, CORES),
    ({"ray": {"init": {"address": None}, "remote": {}}}, CORES),  # Ray's default: a task holds 1 CPU
    ({"ray": {"init": {"address": None}, "remote": {"num_cpus": 2}}}, max(1, CORES // 2)),
    ({"ray": {"init": {"address": None}, "remote": {"num_cpus": 0.5}}}, 2 * CORES),
    ({"ray": {"init": {"address": None}, "remote": {"num_cpus": 2 * CORES}}}, 1),
])
def test_parallel_workers_share_the_cores_by_launcher(launcher, workers):
    assert parallel_workers(OmegaConf.create(launcher)) == workers


@pytest.fixture
def ray_temp_dir():
    # Not under tmp_path: Ray's sockets live in it, and a Unix socket's path is limited to 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_until_gone(marker: str, seconds: float) -> dict[int, str]:
    deadline = time.monotonic() + seconds
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def processes_in(folder: Path) -> dict[int, str]:
    """The live processes working in ``folder``: pid -> command line."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone, or not ours to read
            continue
    return found


def signal_all(pids: dict[int, str], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def ray_env(token: str) -> dict[str, str]:
    """What the tests' Ray processes need. Ray 2.60 turns token authentication on for new clusters, and
    writes a token to ~/.ray unless given one. Ray runs its workers at nice 15: on 2 cores that the
    rest of the suite keeps busy the jobs (Ray tasks) then get almost no CPU (a 4-job sweep took over
    240 s beside three busy loops, 64 s at nice 0, 24 s alone), so they run at nice 0 here."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_worker_niceness": "0"}


@pytest.mark.slow
def test_ray_runs_a_sweep_on_a_local_cluster_and_shuts_it_down(tmp_path, ray_temp_dir):
    cli = make_cli(tmp_path)  # no store yet: the jobs must not race to create it
    cli.env.update(POLYEXP_TEST_RAY=secrets.token_hex(8), **ray_env(secrets.token_hex(32)))
    marker = f"POLYEXP_TEST_RAY={cli.env['POLYEXP_TEST_RAY']}"

    result = cli.run("hydra/launcher=ray", f"+hydra.launcher.ray.init._temp_dir={ray_temp_dir}",
                     "averaging=exp", "averaging.alpha=1,2,3,4", "epochs=50", "-m", timeout=240)

    assert result.returncode == 0, result.stderr
    assert "absl" not in result.stderr and "cuda" not in result.stderr  # no TensorFlow start-up lines
    (parent,), jobs = sweep_runs(cli.client())
    assert parent.info.status == "FINISHED" and parent.data.metrics["jobs_finished"] == 4
    assert sorted(r.info.run_name for r in jobs) == [f"exp alpha={a}" for a in (1, 2, 3, 4)]
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert all(r.info.status == "FINISHED" for r in jobs)
    assert sorted(r.data.tags["polyexp.trajectory"] for r in jobs) == ["reused", "reused", "reused", "trained"]
    # Each job is a Ray task holding 1 CPU, so TensorFlow gets 1 thread per job (on 1 core: no limit).
    assert {r.data.tags.get("polyexp.threads") for r in jobs} == {"1" if CORES > 1 else None}
    # Ray forwards the jobs' output; all four tables arrive, none folded into "[repeated ...]".
    assert result.stdout.count("> 10: single=") == 4 and "repeated" not in result.stdout

    # The launcher used the temp dir given, and the cluster went down with the command (Ray signals
    # its processes on the way out: give them a moment).
    assert list(ray_temp_dir.glob("session_*/logs"))
    assert wait_until_gone(marker, 5) == {}

    # Nothing but polyexp's and MLflow's files where the command ran.
    assert {p.name for p in tmp_path.iterdir()} == {"multirun", "mlflow.db", "mlartifacts", "cache"}
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    assert {p.name for p in sweep.iterdir() if not p.name.startswith('.')} == SWEEP_FILES | {"0", "1", "2", "3"}
    for job in "0123":
        assert {p.name for p in (sweep / job).iterdir()} == JOB_FILES


@pytest.fixture
def ray_cluster(tmp_path, ray_temp_dir):
    """A running Ray cluster (``ray start --head``), started in a folder of its own, without the test's
    POLYEXP_ variables; yields its address, its folder and its token, then stops it."""
    folder = tmp_path / "cluster"
    folder.mkdir()
    marker = ("POLYEXP_TEST_RAY_CLUSTER", secrets.token_hex(8))
    token = secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "POLYEXP_", "HYDRA_", "RAY_"))}
    env.update([marker], **ray_env(token))
    port = free_port()
    try:
        ray = str(Path(sys.executable).parent / "ray")
        options = [f"--port={port}", f"--ray-client-server-port={free_port()}",
                   f"--dashboard-agent-listen-port={free_port()}", "--num-cpus=2", f"--temp-dir={ray_temp_dir}"]
        start = subprocess.run(
            [ray, "start", "--head", "--node-ip-address=127.0.0.1", *options, "--include-dashboard=false",
             "--disable-usage-stats"],
            cwd=folder, env=env, capture_output=True, text=True, timeout=120,
        )
        assert start.returncode == 0, start.stderr
        yield f"127.0.0.1:{port}", folder, token
    finally:  # not `ray stop`: that stops every Ray cluster on the machine
        signal_all(processes_with("=".join(marker)), signal.SIGTERM)
        signal_all(wait_until_gone("=".join(marker), 3), signal.SIGKILL)  # the GCS server may ignore SIGTERM
        wait_until_gone("=".join(marker), 5)
        # Ray's dashboard and runtime-env agents start without the marker, in the cluster's folder
        signal_all(processes_in(folder), signal.SIGKILL)


@pytest.mark.slow
def test_the_cluster_preset_runs_a_sweep_on_a_running_cluster(tmp_path, ray_cluster):
    address, cluster_folder, token = ray_cluster
    cli = make_cli(tmp_path / "launch")
    cli.env.update(ray_env(token))

    # The cluster's workers start in its folder, with its environment: the cache goes on the command line.
    result = cli.run("hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address={address}",
                     f"cache.dir={cli.cache}", "averaging=exp", "averaging.alpha=1,2", "epochs=50", "-m", timeout=240)

    assert result.returncode == 0, result.stderr
    (parent,), jobs = sweep_runs(cli.client())
    assert parent.info.status == "FINISHED" and parent.data.metrics["jobs_finished"] == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert sorted(r.data.tags["polyexp.trajectory"] for r in jobs) == ["reused", "trained"]
    (sweep,) = (cli.workdir / "multirun").glob("*/*")
    assert {p.name for p in sweep.iterdir() if not p.name.startswith('.')} == SWEEP_FILES | {"0", "1"}
    assert list(cluster_folder.iterdir()) == []
    assert len(list((cli.cache / "trajectories").glob("*.npz"))) == 1



@pytest.mark.slow
def test_ctrl_c_stops_a_ray_sweep_and_ends_every_run(tmp_path, ray_temp_dir):
    cli = make_cli(tmp_path)
    cli.env.update(POLYEXP_TEST_RAY=secrets.token_hex(8), **ray_env(secrets.token_hex(32)))
    marker = f"POLYEXP_TEST_RAY={cli.env['POLYEXP_TEST_RAY']}"
    process = cli.start("hydra/launcher=ray", f"+hydra.launcher.ray.init._temp_dir={ray_temp_dir}",
                        "averaging=exp", "averaging.alpha=1,2", "epochs=5000", "-m")
    deadline = time.monotonic() + 180
    # the store is ready once the parent run is (a test client on a fresh SQLite store would race to make it)
    while not list((cli.workdir / "multirun").rglob("polyexp_sweep.json")) or \
            len([r for r in cli.jobs() if r.info.status == "RUNNING"]) < 2:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
        time.sleep(0.5)
    time.sleep(2.0)  # inside the epochs
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)

    assert process.returncode == 130, output
    (parent,) = cli.sweeps()
    assert parent.info.status == "KILLED"
    assert len(cli.jobs()) == 2 and {r.info.status for r in cli.jobs()} <= {"KILLED", "FAILED"}
    assert wait_until_gone(marker, 10) == {}
