"""A fresh SQLite store survives being interrupted while it is created, and two commands creating it at once.

MLflow migrates a new SQLite file in place for seconds; stopped in that time, the file was left
half-migrated and every later command failed (``duplicate column name: outputs``). polyexp builds the
store under a name of its own and renames it into place (``polyexp.run.sqlite_store``).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Cli, make_cli, table

CREATE = ("import sys; from pathlib import Path; from polyexp.run.sqlite_store import create_store; "
          "create_store(Path(sys.argv[1]), sys.argv[2])")


def building(folder: Path) -> list[Path]:
    return list(folder.glob(".mlflow.db.creating-*"))


def stop_while_building(folder: Path, command: list[str], sig: int, delay: float, cwd: Path | None = None,
                        env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``command``, and send ``sig`` ``delay`` s after the store's temporary file appears (the
    migration has begun); the limit only catches a hang."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    deadline = time.monotonic() + 300
    while not building(folder):
        if process.poll() is not None:
            raise AssertionError(f"ended before creating the store:\n{process.communicate()[0]}")
        assert time.monotonic() < deadline, "the store was never created"
        time.sleep(0.01)
    time.sleep(delay)
    process.send_signal(sig)
    output, _ = process.communicate(timeout=120)
    return process, output


def assert_store_works(path: Path) -> None:
    from mlflow import MlflowClient

    from polyexp.run.sqlite_store import create_store

    create_store(path, str(path.parent / "mlartifacts"))
    client = MlflowClient(f"sqlite:///{path}")
    experiment = client.create_experiment("after")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "m", 1.0)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}


# The migration takes about 2 s here (longer on a busy machine): signals across it, and a kill.
MOMENTS = [(signal.SIGINT, 0.0), (signal.SIGINT, 0.4), (signal.SIGTERM, 0.8), (signal.SIGINT, 1.3),
           (signal.SIGKILL, 0.2), (signal.SIGKILL, 1.0)]


@pytest.mark.parametrize(("sig", "delay"), MOMENTS)
def test_a_store_whose_creation_is_stopped_at_any_moment_is_created_whole_by_the_next_command(tmp_path, sig, delay):
    store = tmp_path / "mlflow.db"
    process, output = stop_while_building(tmp_path, [sys.executable, "-c", CREATE, str(store), "art"], sig, delay)
    assert process.returncode != 0 or store.exists(), output  # stopped, or it had just finished
    if sig == signal.SIGINT:  # raised in Python (without a handler, SIGTERM ends the process as SIGKILL does)
        assert building(tmp_path) == [], "an interrupted creation removes its temporary file"
    if store.exists():  # finished before the signal: whole
        assert_store_works(store)
        return
    assert_store_works(store)  # a killed creation's temporary file is removed on the way
    assert building(tmp_path) == []


def test_two_creators_at_once_make_one_store_both_can_use(tmp_path):
    store = tmp_path / "mlflow.db"
    processes = [subprocess.Popen([sys.executable, "-c", CREATE + "; from mlflow import MlflowClient; "
                                   "MlflowClient(f'sqlite:///{sys.argv[1]}').create_experiment(sys.argv[3])",
                                   str(store), "art", name], stderr=subprocess.PIPE, text=True)
                 for name in ("first", "second")]
    for process in processes:
        _, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors
    from mlflow import MlflowClient

    names = {e.name for e in MlflowClient(f"sqlite:///{store}").search_experiments()}
    assert {"first", "second"} <= names and building(tmp_path) == []


# Through the real command: Ctrl-C and SIGTERM while the first command of a fresh folder creates the
# store, under Hydra's basic launcher and joblib's; then the command runs again and finishes.
SWEEP = ("averaging=exp", "averaging.alpha=1,2", "epochs=20")


@pytest.mark.slow
@pytest.mark.parametrize(("launcher", "sig", "delay"), [
    ("basic", signal.SIGINT, 0.0), ("basic", signal.SIGTERM, 0.7),
    ("joblib", signal.SIGINT, 1.2), ("joblib", signal.SIGTERM, 0.3)])
def test_the_first_command_stopped_while_it_creates_the_store_leaves_a_store_the_next_one_uses(
        tmp_path, launcher, sig, delay):
    cli = make_cli(tmp_path / "work")
    command = [sys.executable, "-m", "polyexp", *SWEEP, f"hydra/launcher={launcher}", "-m"]
    process, output = stop_while_building(cli.workdir, command, sig, delay, cwd=cli.workdir, env=cli.env)
    assert process.returncode in (130, 128 + signal.SIGTERM), output
    assert "Traceback" not in output
    assert building(cli.workdir) == []

    again = cli.run(*SWEEP, f"hydra/launcher={launcher}", "-m")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Traceback" not in again.stderr
    assert [r.info.status for r in cli.jobs()].count("FINISHED") == 2


@pytest.mark.slow
def test_two_commands_started_together_on_a_fresh_folder_both_finish(tmp_path):
    cli: Cli = make_cli(tmp_path / "work")
    processes = [cli.start("epochs=20", f"seed={seed}") for seed in (1, 2)]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
        assert "Traceback" not in output and len(table(output)) == 10
    assert sorted(r.info.status for r in cli.runs()) == ["FINISHED", "FINISHED"]
