"""``python -m polyexp.ui [--port 5000] [--experiment polyexp] [--uri URI]``: the MLflow UI on the runs.

It starts ``mlflow server`` on 127.0.0.1 for the store polyexp uses from the current folder, prints the
experiment's runs link (``polyexp.run.links``) and serves until Ctrl-C. For an http(s) tracking server it
only prints that server's link.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import IO

from polyexp.run.links import DEFAULT_EXPERIMENT, DEFAULT_PORT, HOST, is_server, runs_url, ui_address

STARTUP_SECONDS = 120.0
STOP_SECONDS = 15.0
# What ``mlflow server`` says on every start, which asks nothing of a user serving 127.0.0.1: the
# host check it applies (it serves this host alone), and a deprecation inside MLflow's own imports.
_SERVER_NOTICES = ("[MLflow] Security middleware enabled with default settings (localhost-only).",)
_SERVER_WARNINGS = ("ignore:starlette.middleware.wsgi is deprecated",)


class UiError(Exception):
    """A reason not to serve, said in one line."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m polyexp.ui",
        description="Serve the MLflow UI for polyexp's store on 127.0.0.1 and print the link to the runs.",
    )
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help="port on 127.0.0.1 (default: 5000)")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="experiment to link (default: polyexp)")
    parser.add_argument("--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    args = parser.parse_args(argv)
    try:
        from polyexp.run import tracking  # loads MLflow

        uri = tracking.resolve_tracking_uri(args.uri, Path.cwd())
        experiment_id = _find_experiment(uri, args.experiment)
        if is_server(uri):
            print(runs_url(ui_address(uri), experiment_id), flush=True)
            return 0
        _check_port(args.port)
        with _serving(uri, args.port, tracking.artifact_root(uri)) as server:
            print(f"MLflow UI for {_show_store(uri)} on http://{HOST}:{args.port} (Ctrl-C stops it); "
                  f"the {args.experiment} runs:", flush=True)
            print(runs_url(ui_address(uri, args.port), experiment_id), flush=True)
            code = server.wait()
            raise UiError(f"the MLflow server stopped (exit code {code})")
    except UiError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1..65535)")
    return int(text)


def _find_experiment(uri: str, name: str) -> str:
    """The id of experiment ``name`` in the store at ``uri``, which this never creates or changes."""
    from mlflow import MlflowClient

    from polyexp.core.errors import TrackingError, first_line
    from polyexp.run import tracking

    where = _show_store(uri)
    run_first = shlex.join(["python", "-m", "polyexp"] + ([] if name == DEFAULT_EXPERIMENT
                                                           else [f"tracking.experiment={name}"]))
    missing = f"no {name} runs in {where} yet: run `{run_first}` first"
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise UiError(missing)
    try:
        if is_server(uri):
            tracking.check_server(uri)
        found = MlflowClient(uri).get_experiment_by_name(name)
    except TrackingError as exc:
        raise UiError(str(exc)) from None
    except Exception as exc:
        raise UiError(tracking.refusal(uri, exc, name)
                      or f"cannot read the MLflow store {where}: {first_line(exc)}") from None
    if found is None:
        raise UiError(missing)
    if found.lifecycle_stage == "deleted":
        raise UiError(f"the experiment {name} in {where} is deleted: restore it with "
                      f"`mlflow experiments restore --experiment-id {found.experiment_id}`")
    return found.experiment_id


def _show_store(uri: str) -> str:
    if not uri.startswith("sqlite:///"):
        return ui_address(uri).rstrip("/") if is_server(uri) else uri
    path = Path(uri.removeprefix("sqlite:///"))
    with contextlib.suppress(ValueError):
        return f"./{path.relative_to(Path.cwd().resolve())}"
    return str(path)


def _check_port(port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no conflict
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UiError(f"port {port} on {HOST} is in use: pick another with --port") from None
            raise UiError(f"cannot use port {port} on {HOST}: {exc.strerror}") from None


@contextlib.contextmanager
def _serving(uri: str, port: int, artifacts: str | None) -> Iterator[subprocess.Popen]:
    """``mlflow server`` on 127.0.0.1:``port`` until the block ends, Ctrl-C, SIGTERM or SIGHUP."""
    command = [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(port), "--workers", "1",
               "--backend-store-uri", uri, "--registry-store-uri", uri,  # named: else MLflow says it used this
               "--uvicorn-opts", "--no-access-log --log-level warning"]
    if artifacts:  # the folder polyexp logs into: served for runs, and the default for new experiments
        command += ["--artifacts-destination", artifacts]
    # MLflow's job runner (GenAI judges and scheduled tasks) adds a process per queue; runs need none.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"), *_SERVER_WARNINGS]))
    # Also SIGINT: a process started in the background inherits it ignored, and must still stop on it.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    # Its own session: Ctrl-C reaches only this process, which then stops the server's whole tree.
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    output = threading.Thread(target=_forward, args=(server.stdout,), daemon=True)
    output.start()
    try:
        _wait_until_ready(server, port, output)
        yield server
    finally:
        _stop(server)
        output.join(STOP_SECONDS)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _forward(lines: IO[str]) -> None:
    """Copy the server's output to stderr, less its start-up notices (:data:`_SERVER_NOTICES`)."""
    for line in lines:
        if not line.startswith(_SERVER_NOTICES):
            sys.stderr.write(line)
            sys.stderr.flush()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _wait_until_ready(server: subprocess.Popen, port: int, output: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output.join(STOP_SECONDS)  # its last words first
            raise UiError(f"the MLflow server exited on start (exit code {server.returncode}); its output is above")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
    raise UiError(f"the MLflow server did not answer on http://{HOST}:{port} within {STARTUP_SECONDS:.0f} s")


def _stop(server: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)  # mlflow passes it on to uvicorn and waits for it
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(STOP_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)  # whatever did not stop in time, or outlived mlflow
    server.wait()


if __name__ == "__main__":
    sys.exit(main())
