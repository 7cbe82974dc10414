"""Shared helpers: the real CLI in a subprocess, a real SQLite MLflow store, composed configs."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import polyexp  # noqa: F401 - its environment defaults (oneDNN off), before any test imports TensorFlow

ROOT = Path(__file__).resolve().parents[1]
TABLE_LINE = re.compile(r"^> (\d+): single=(\d\.\d{3}), ensemble=(\d\.\d{3})$", re.M)


# The order the files start in. Under --dist loadfile a file runs whole on one worker. Those that
# mostly wait (a SLURM time limit, servers) start first, beside files that compute; Ray's, whose
# daemons slow down several-fold on cores the rest of the suite keeps busy, starts last, when the
# others are nearly done (measured with POLYEXP_TEST_CPU, below).
FIRST = ("test_slurm.py", "test_team_server.py", "test_tracking_server.py", "test_cli_faults.py",
         "test_cli_sweep.py", "test_cli_identity.py", "test_cli_own_data.py", "test_launchers.py")
LAST = ("test_ray_launcher.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def place(item: pytest.Item) -> int:
        name = item.path.name
        return FIRST.index(name) if name in FIRST else len(FIRST) + 1 if name in LAST else len(FIRST)

    items.sort(key=place)  # stable: each file keeps its order, the others theirs


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """With POLYEXP_TEST_CPU=FILE, each test's CPU seconds (its process and the subprocesses it waited
    for) and wall seconds are appended to FILE: where the suite's time goes, on a machine of few cores."""
    log = os.environ.get("POLYEXP_TEST_CPU")
    if not log:
        return (yield)
    import resource
    import time

    def cpu() -> float:
        return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                      resource.getrusage(resource.RUSAGE_CHILDREN)))

    started, wall = cpu(), time.monotonic()
    try:
        return (yield)
    finally:
        with open(log, "a") as out:
            out.write(f"{cpu() - started:.1f}\t{time.monotonic() - wall:.1f}\t{item.nodeid}\n")


def is_sweep(run) -> bool:
    """Whether ``run`` is a sweep's parent run."""
    return run.data.tags.get("polyexp.role") == "sweep"


def is_job(run) -> bool:
    """Whether ``run`` is a job of a sweep (it has a parent run)."""
    return "mlflow.parentRunId" in run.data.tags


@dataclass
class Cli:
    """``python -m polyexp`` run in ``workdir``, with its own store and trajectory cache."""

    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "polyexp", *args],
            cwd=self.workdir, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout,
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "polyexp", *args], cwd=self.workdir, env={**self.env, **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

    @property
    def store(self) -> Path:
        return self.workdir / "mlflow.db"

    @property
    def cache(self) -> Path:
        return Path(self.env["POLYEXP_CACHE_DIR"])

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(f"sqlite:///{self.store}")

    def runs(self, experiment: str = "polyexp") -> list:
        """Every run of ``experiment``, oldest first; [] when the store or experiment is missing."""
        if not self.store.exists():
            return []
        client = self.client()
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return []
        return list(reversed(client.search_runs([found.experiment_id], order_by=["attributes.start_time DESC"])))

    def sweeps(self, experiment: str = "polyexp") -> list:
        """The sweep parent runs of ``experiment``, oldest first."""
        return [r for r in self.runs(experiment) if is_sweep(r)]

    def jobs(self, experiment: str = "polyexp") -> list:
        """The job runs (those with a parent run) of ``experiment``, oldest first."""
        return [r for r in self.runs(experiment) if is_job(r)]


def make_cli(workdir: Path) -> Cli:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "POLYEXP_", "HYDRA_"))}
    env.update(POLYEXP_CACHE_DIR=str(workdir / "cache"), PYTHONUNBUFFERED="1")
    return Cli(workdir, env)


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store, created once: creating one runs MLflow's migrations (seconds)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def cli(tmp_path: Path, empty_store: Path) -> Cli:
    """A CLI whose store exists already (tests of a fresh store use ``make_cli`` alone)."""
    work = make_cli(tmp_path / "work")
    shutil.copyfile(empty_store, work.store)
    return work


def table(stdout: str) -> list[tuple[int, float, float]]:
    """The seed's table from a job's output: (n, single, ensemble) per line."""
    return [(int(n), float(s), float(e)) for n, s, e in TABLE_LINE.findall(stdout)]


def compose(overrides: Sequence[str] = ()):
    """The config a user gets from ``python -m polyexp OVERRIDES``, composed in-process."""
    from polyexp.hydra_setup import compose as compose_config

    return compose_config(overrides)


def metric_steps(client, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def sweep_runs(client, experiment: str = "polyexp") -> tuple[list, list]:
    """The sweep parent runs and the job runs of ``experiment``, oldest first."""
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])
    return [r for r in runs if is_sweep(r)], [r for r in runs if is_job(r)]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_with(marker: str, *, whole_entry: bool = False) -> dict[int, str]:
    """The live processes whose environment holds ``marker``: pid -> command line.

    With ``whole_entry``, ``marker`` must be one whole ``NAME=value`` entry of the environment, not part of one.
    """
    wanted = marker.encode()
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            if wanted in (environ.split(b"\0") if whole_entry else environ):
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone, or a zombie
            continue
    return found
