"""docs/sweeps.md's team server, real: PostgreSQL, ``mlflow server --app-name basic-auth`` on loopback, a
user created through the auth REST API, and a parallel sweep logged to it with that user's password.

PostgreSQL runs from ``initdb`` in a temporary folder, on a unix socket only, as the ``postgres`` user
when the tests run as root (PostgreSQL refuses root), else as the current user. ``.ci/run`` installs
Debian's ``postgresql`` package where it is missing.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import filecmp
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, free_port, sweep_runs

pytestmark = pytest.mark.slow

EPOCHS = 50
SWEEP = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "averaging=exp", "averaging.alpha=1,2",
         f"epochs={EPOCHS}", "-m")
ADMIN, ADMIN_PASSWORD = "admin", secrets.token_urlsafe(16)
USER, PASSWORD = "alice", secrets.token_urlsafe(16)
STEP_COLUMNS = {"seed", "n", "epoch"}


def postgres_binaries() -> Path | None:
    """PostgreSQL's server programs: where ``initdb`` on PATH points, else Debian's newest."""
    found = shutil.which("initdb")
    folders = [Path(found).resolve().parent] if found else []
    debian = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    folders += sorted(debian, key=lambda p: int(p.parent.name), reverse=True)
    return next((f for f in folders if (f / "initdb").exists() and (f / "postgres").exists()), None)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Signal the process's whole group, then kill it if it is still there after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def tail(path: Path) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-30:]) if path.exists() else ""


def request(uri: str, path: str, credentials: tuple[str, str] | None = None, body: dict | None = None) -> int:
    """The HTTP status of a GET (or, with ``body``, a JSON POST) to the server."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if credentials:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(uri + path, data, headers), timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL cluster of its own with an empty database; yields its SQLAlchemy URI."""
    binaries = postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs it: apt-get install postgresql)")
    # Not under pytest's tmp_path: its root-only parent folders would lock the postgres user out.
    folder = Path(tempfile.mkdtemp(prefix="polyexp-pg-"))
    owner: dict[str, Any] = {}
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
        owner = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    log = folder / "postgres.log"
    try:
        initdb = subprocess.run(
            [binaries / "initdb", "-D", folder / "data", "-U", "postgres", "--auth=trust", "--no-locale",
             "-E", "UTF8", "--no-sync"],
            cwd=folder, capture_output=True, text=True, timeout=120, **owner,
        )
        assert initdb.returncode == 0, initdb.stderr
        with open(log, "wb") as output:
            server = subprocess.Popen(
                [binaries / "postgres", "-D", folder / "data", "-k", folder, "-c", "listen_addresses="],
                cwd=folder, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, **owner,
            )
        try:
            deadline = time.monotonic() + 60
            while subprocess.run(
                [binaries / "createdb", "-h", folder, "-U", "postgres", "mlflow"], cwd=folder, capture_output=True,
                timeout=30, **owner,
            ).returncode != 0:
                assert server.poll() is None and time.monotonic() < deadline, f"PostgreSQL did not start:\n{tail(log)}"
                time.sleep(0.3)
            yield f"postgresql+psycopg://postgres@/mlflow?host={folder}"
        finally:
            stop(server, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def team_server(postgres: str, tmp_path_factory) -> Iterator[str]:
    """docs/sweeps.md's recipe on loopback: its URI, with the user ``USER`` created by the admin."""
    folder = tmp_path_factory.mktemp("team-server")
    config = folder / "basic_auth.ini"
    config.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{folder / 'basic_auth.db'}\n"
        f"admin_username = {ADMIN}\nadmin_password = {ADMIN_PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_AUTH_CONFIG_PATH=str(config), MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16))
    port = free_port()
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    log = folder / "server.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [mlflow, "server", "--app-name", "basic-auth", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--backend-store-uri", postgres, "--artifacts-destination", str(folder / "artifacts")],
            env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not healthy(uri):
            assert process.poll() is None and time.monotonic() < deadline, f"mlflow server did not start:\n{tail(log)}"
            time.sleep(0.3)
        created = request(uri, "/api/2.0/mlflow/users/create", (ADMIN, ADMIN_PASSWORD),
                          {"username": USER, "password": PASSWORD})
        assert created == 200, tail(log)
        yield uri
    finally:
        stop(process)


def healthy(uri: str) -> bool:
    try:
        return request(uri, "/health") == 200
    except OSError:  # not listening yet
        return False


def server_env(uri: str, password: str = PASSWORD) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": password}


def test_a_request_without_credentials_is_refused(team_server: str):
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert request(team_server, search) == 401
    assert request(team_server, search, (USER, "wrong")) == 401
    assert request(team_server, search, (USER, PASSWORD)) == 200


def test_a_parallel_sweep_logs_every_number_and_file(cli: Cli, team_server: str, tmp_path: Path, monkeypatch):
    from mlflow import MlflowClient

    result = cli.run(*SWEEP, env=server_env(team_server), timeout=600)
    assert result.returncode == 0, result.stderr
    assert cli.runs() == []  # nothing went to the local store
    for key, value in server_env(team_server).items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(team_server)
    (parent,), jobs = sweep_runs(client)
    assert sorted(r.info.run_name for r in jobs) == ["exp alpha=1", "exp alpha=2"]
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert {r.info.status for r in [parent, *jobs]} == {"FINISHED"}
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"sweep_results.csv", "sweep_comparison.png"}

    for run in jobs:
        run_id, folder = run.info.run_id, Path(run.data.tags["polyexp.output_dir"])
        logged = set(run.data.metrics)
        in_files = set()
        for name, step_column in (("results_mean.csv", "n"), ("history.csv", "epoch")):  # one seed: its means
            with open(folder / name, newline="") as handle:
                rows = list(csv.DictReader(handle))
            metrics = [column for column in rows[0]  # one seed has no interval: those columns are nan
                       if column not in STEP_COLUMNS and all(row[column] != "nan" for row in rows)]
            assert metrics and set(metrics) <= logged, (name, metrics, logged)
            for key in metrics:
                history = {m.step: m.value for m in client.get_metric_history(run_id, key)}
                assert history == {int(row[step_column]): float(row[key]) for row in rows}, (run.info.run_name, key)
            in_files.update(metrics)
            if name == "history.csv":  # the learning curves: one step per epoch
                assert [int(row["epoch"]) for row in rows] == list(range(1, EPOCHS + 1))
        for key in logged - in_files:  # the summaries
            assert [m.step for m in client.get_metric_history(run_id, key)] == [0], key

        downloaded = Path(client.download_artifacts(run_id, "", str(tmp_path / run_id)))
        local = {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}
        remote = {p.relative_to(downloaded) for p in downloaded.rglob("*") if p.is_file()}
        assert remote == local  # the job's report too: logged with the run
        assert {Path("results.csv"), Path("checkpoints.npz")} <= remote
        for path in remote:
            if path.suffix == ".log":  # the job's log grows after its files are logged
                assert (folder / path).read_bytes().startswith((downloaded / path).read_bytes()), path
            else:
                assert filecmp.cmp(folder / path, downloaded / path, shallow=False), path


def test_a_wrong_password_fails_fast_in_one_line(cli: Cli, team_server: str, monkeypatch):
    from mlflow import MlflowClient

    for args in ([f"epochs={EPOCHS}"], list(SWEEP)):
        # refused at once: the limit catches MLflow's minutes of retries, not a busy machine
        result = cli.run("tracking.experiment=refused", *args, env=server_env(team_server, "wrong"), timeout=120)
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
        refused = [line for line in result.stderr.splitlines() if "refused the credentials (HTTP 401)" in line]
        assert len(refused) == 1, result.stderr
        assert refused[0].startswith(f"the MLflow tracking server at {team_server} ")
        assert "MLFLOW_TRACKING_USERNAME" in refused[0] and "MLFLOW_TRACKING_PASSWORD" in refused[0]
    for key, value in server_env(team_server).items():
        monkeypatch.setenv(key, value)
    assert MlflowClient(team_server).get_experiment_by_name("refused") is None


def test_a_user_without_write_access_to_the_experiment_fails_in_one_line(cli: Cli, team_server: str, monkeypatch):
    """``default_permission = READ``: another user reads the experiment, and is refused its first run."""
    from mlflow import MlflowClient

    assert request(team_server, "/api/2.0/mlflow/users/create", (ADMIN, ADMIN_PASSWORD),
                   {"username": "reader", "password": PASSWORD}) == 200
    for key, value in server_env(team_server).items():
        monkeypatch.setenv(key, value)
    MlflowClient(team_server).create_experiment("owned")
    reader = {**server_env(team_server), "MLFLOW_TRACKING_USERNAME": "reader"}
    result = cli.run("tracking.experiment=owned", f"epochs={EPOCHS}", env=reader, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    denied = [line for line in result.stderr.splitlines() if "denied user 'reader' access" in line]
    assert len(denied) == 1 and "(HTTP 403)" in denied[0], result.stderr
    assert denied[0].startswith(f"the MLflow tracking server at {team_server} ")
