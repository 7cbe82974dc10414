"""Links into the MLflow UI, the hints jobs print, and ``python -m polyexp.ui``'s refusals.

The links themselves are checked in a real browser by test_ui_browser.py.
"""

import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import Cli, free_port

from polyexp.run.links import artifact_url, compare_url, run_url, runs_url, ui_address, view_command, view_hint

LOCAL = "http://127.0.0.1:5000/"
RUN = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


def test_a_local_store_links_to_python_m_polyexp_ui():
    assert ui_address("sqlite:////work/mlflow.db") == LOCAL
    assert ui_address("sqlite:////work/mlflow.db", port=5077) == "http://127.0.0.1:5077/"
    assert ui_address("postgresql://u:p@db/mlflow") == LOCAL


def test_a_tracking_server_links_into_itself_without_credentials():
    assert ui_address("http://mlflow-host:5000") == "http://mlflow-host:5000/"
    assert ui_address("https://alice:secret@mlflow.example.com/mlflow/") == "https://mlflow.example.com/mlflow/"
    assert ui_address("http://127.0.0.1:8080", port=5077) == "http://127.0.0.1:8080/"


def test_the_links_open_on_model_training_routes():
    assert runs_url(LOCAL, "1") == "http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning"
    assert run_url(LOCAL, "1", RUN) == f"http://127.0.0.1:5000/#/experiments/1/runs/{RUN}?workflowType=machine_learning"
    assert artifact_url(LOCAL, "1", RUN, "plots/accuracy_vs_n.png") == (
        f"http://127.0.0.1:5000/#/experiments/1/runs/{RUN}/artifacts/plots/accuracy_vs_n.png"
        "?workflowType=machine_learning"
    )
    assert compare_url(LOCAL, "1", [RUN, OTHER]) == (
        f'http://127.0.0.1:5000/#/compare-runs?runs=[%22{RUN}%22,%22{OTHER}%22]&experiments=[%221%22]'
        "&workflowType=machine_learning"
    )
    server = "https://mlflow.example.com/mlflow"  # no trailing slash: still one
    assert runs_url(server, "7") == "https://mlflow.example.com/mlflow/#/experiments/7/runs?workflowType=machine_learning"
    assert artifact_url(LOCAL, "1", RUN, "/plots/a b.png").endswith(f"/runs/{RUN}/artifacts/plots/a%20b.png"
                                                                     "?workflowType=machine_learning")


def test_the_hint_names_the_command_then_the_link(tmp_path):
    store = f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    assert view_hint(store, "1", RUN, launch_dir=tmp_path) == (
        f"view: python -m polyexp.ui\n      {run_url(LOCAL, '1', RUN)}"
    )
    assert view_hint(store, "1", launch_dir=tmp_path).endswith(runs_url(LOCAL, "1"))
    elsewhere = "sqlite:////data/runs/other.db"
    assert view_command(elsewhere, "mine", launch_dir=tmp_path) == (
        "python -m polyexp.ui --uri sqlite:////data/runs/other.db --experiment mine"
    )
    assert view_command(store, "two words", launch_dir=tmp_path) == "python -m polyexp.ui --experiment 'two words'"
    assert view_hint("http://mlflow-host:5000", "3", RUN) == f"view: {run_url('http://mlflow-host:5000/', '3', RUN)}"


def ui_command(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "polyexp.ui", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_without_a_store_it_says_to_run_polyexp_first_and_creates_nothing(tmp_path, cli: Cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = ui_command(empty, env=cli.env)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "no polyexp runs in ./mlflow.db yet: run `python -m polyexp` first\n"
    assert list(empty.iterdir()) == []

    result = ui_command(cli.workdir, "--experiment", "mine", env=cli.env)  # a store without that experiment
    assert result.returncode == 1
    assert result.stderr == "no mine runs in ./mlflow.db yet: run `python -m polyexp tracking.experiment=mine` first\n"


@pytest.mark.slow
def test_a_port_in_use_is_one_clear_line(cli: Cli):
    cli.client().create_experiment("polyexp")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = ui_command(cli.workdir, "--port", str(port), env=cli.env)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"port {port} on 127.0.0.1 is in use: pick another with --port\n"


@pytest.mark.slow
def test_a_single_job_ends_with_how_to_view_its_run(cli: Cli):
    result = cli.run("epochs=20")
    assert result.returncode == 0, result.stderr
    (run,) = cli.runs()
    lines = result.stderr.splitlines()
    assert lines[-2].endswith("] view: python -m polyexp.ui")
    assert lines[-1] == "      " + run_url(LOCAL, run.info.experiment_id, run.info.run_id)
    lines = result.stdout.splitlines()  # stdout: the results alone
    assert lines[0].startswith("> n: test accuracy of the n-th latest checkpoint (single) and of the average")
    assert all(line.startswith("> ") for line in lines[:-1]) and lines[-1].startswith("selected on validation")


@pytest.mark.slow
def test_serving_prints_the_link_and_nothing_of_mlflow_s_start_up(cli: Cli, tmp_path):
    cli.client().create_experiment("polyexp")
    port = free_port()
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "polyexp.ui", "--port", str(port)], cwd=cli.workdir,
                                   env=cli.env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            first, link = process.stdout.readline(), process.stdout.readline()  # blocks until it serves
            assert first.startswith(f"MLflow UI for ./mlflow.db on http://127.0.0.1:{port}"), first
            assert link.startswith(f"http://127.0.0.1:{port}/#/experiments/"), link
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as health:
                assert health.status == 200
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(60) == 0
    # MLflow says, on every start: the registry store it defaults to, its localhost-only host check and
    # a StarletteDeprecationWarning with a line of its code. None of it asks anything of the user.
    assert errors.read_text() == ""
