"""Links into the MLflow UI that open on the runs, and the hint a job prints to view its run.

MLflow 3's UI opens an experiment on its GenAI overview unless the browser chose "Model training"
before (it keeps the choice in localStorage); no experiment tag changes that. A link that carries
``workflowType=machine_learning`` opens on the runs whatever the browser chose::

    ui = ui_address("sqlite:////work/mlflow.db")          # http://127.0.0.1:5000/ (python -m polyexp.ui)
    runs_url(ui, "1")                                      # .../#/experiments/1/runs?workflowType=machine_learning
    run_url(ui, "1", run_id), artifact_url(ui, "1", run_id, "plots/accuracy_vs_n.png")
    compare_url(ui, "1", [run_a, run_b])                   # .../#/compare-runs?runs=[...]&experiments=["1"]&...
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from polyexp.run.secrets import redact

if TYPE_CHECKING:
    from mlflow import MlflowClient

HOST = "127.0.0.1"
DEFAULT_PORT = 5000
DEFAULT_EXPERIMENT = "polyexp"
MACHINE_LEARNING = "workflowType=machine_learning"


def is_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def ui_address(tracking_uri: str, port: int = DEFAULT_PORT) -> str:
    """Where the UI for ``tracking_uri`` lives: the server itself, else ``python -m polyexp.ui`` on loopback."""
    if not is_server(tracking_uri):
        return f"http://{HOST}:{port}/"
    parts = urlsplit(tracking_uri)
    host = parts.netloc.rpartition("@")[2]  # never print credentials
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/") + "/", "", ""))


def runs_url(ui: str, experiment_id: str) -> str:
    """The experiment's runs table."""
    return f"{_experiment(ui, experiment_id)}/runs?{MACHINE_LEARNING}"


def run_url(ui: str, experiment_id: str, run_id: str) -> str:
    """One run's page: its metrics, parameters, tags, and for a sweep's parent its child runs."""
    return f"{_experiment(ui, experiment_id)}/runs/{quote(run_id, safe='')}?{MACHINE_LEARNING}"


def artifact_url(ui: str, experiment_id: str, run_id: str, path: str) -> str:
    """One run's Artifacts tab, opened on ``path`` (``plots/accuracy_vs_n.png``)."""
    run = f"{_experiment(ui, experiment_id)}/runs/{quote(run_id, safe='')}"
    return f"{run}/artifacts/{quote(path.strip('/'), safe='/')}?{MACHINE_LEARNING}"


def compare_url(ui: str, experiment_id: str, run_ids: Sequence[str]) -> str:
    """MLflow's compare view of ``run_ids``: parameters and metrics side by side, and plots."""
    runs = quote(json.dumps(list(run_ids), separators=(",", ":")), safe="[],")
    experiments = quote(json.dumps([str(experiment_id)]), safe="[],")
    return f"{_root(ui)}#/compare-runs?runs={runs}&experiments={experiments}&{MACHINE_LEARNING}"


def view_command(
    tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT, launch_dir: Path | None = None
) -> str:
    """``python -m polyexp.ui``, with the options that point it at ``tracking_uri`` from ``launch_dir``."""
    words = ["python", "-m", "polyexp.ui"]
    if tracking_uri != f"sqlite:///{((launch_dir or Path.cwd()) / 'mlflow.db').resolve()}":
        words += ["--uri", redact(tracking_uri)]  # the password stays in the environment
    if experiment != DEFAULT_EXPERIMENT:
        words += ["--experiment", experiment]
    return shlex.join(words)


def view_hint(
    tracking_uri: str,
    experiment_id: str,
    run_id: str | None = None,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    launch_dir: Path | None = None,
) -> str:
    """How to look at a run (or the experiment's runs): the command that serves it, then its link.

    For a tracking server, only the link: it serves its UI itself.
    """
    ui = ui_address(tracking_uri)
    url = run_url(ui, experiment_id, run_id) if run_id else runs_url(ui, experiment_id)
    if is_server(tracking_uri):
        return f"view: {url}"
    return f"view: {view_command(tracking_uri, experiment, launch_dir)}\n      {url}"


def run_view_hint(client: MlflowClient, run_id: str) -> str:
    """``view_hint`` for a run, looking up its experiment through ``client``."""
    experiment_id = client.get_run(run_id).info.experiment_id
    name = client.get_experiment(experiment_id).name
    return view_hint(client.tracking_uri, experiment_id, run_id, experiment=name)


def _root(ui: str) -> str:
    return ui if ui.endswith("/") else ui + "/"


def _experiment(ui: str, experiment_id: str) -> str:
    return f"{_root(ui)}#/experiments/{quote(str(experiment_id), safe='')}"
