"""MLflow tracking: the store, runs that always end with a status, and batched logging.

Without ``tracking.uri`` or ``$MLFLOW_TRACKING_URI``, the store is ``mlflow.db`` (SQLite) in the
directory the command is launched from, with artifacts in ``mlartifacts/`` beside it::

    store = open_store(None, "polyexp", Path.cwd())   # sqlite:////abs/path/mlflow.db
    with tracked_run(store, "exp alpha=2", tags={}) as run_id:
        log_metrics(store.client, run_id, [("test_average_acc", 0.813, 1), ("test_average_acc", 0.814, 2)])
    # the run ends FINISHED, or FAILED (error logged) or KILLED if the block raised
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from polyexp.core.errors import PolyexpError, TrackingError, first_line, full_disk
from polyexp.run.secrets import redact, redacted
from polyexp.run.sqlite_store import create_store
from polyexp.run.stop import Stop, process_stop

log = logging.getLogger(__name__)

# MLflow retries an unreachable server for minutes by default; fail within seconds instead.
for _name, _value in (
    ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"),
    ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
    ("MLFLOW_HTTP_REQUEST_TIMEOUT", "30"),
):
    os.environ.setdefault(_name, _value)

# MLflow announces its store's migrations at INFO; a job's own lines say what matters.
logging.getLogger("mlflow").setLevel(logging.WARNING)
# MLflow logs a failed SQL write with its traceback (some 60 lines) before raising it: on a full disk
# that hides the cause, which polyexp's own line names.
logging.getLogger("mlflow.store.db.utils").addFilter(lambda r: not full_disk(r.exc_info[1] if r.exc_info else None))

TAG_PREFIX = "polyexp."
PROCESS_TAG = TAG_PREFIX + "process"  # host:pid of the process that runs the run
_BATCH_PARAMS, _BATCH_METRICS = 100, 1000  # MLflow's limits per log_batch call


def resolve_tracking_uri(configured: str | None, launch_dir: Path) -> str:
    """``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<launch_dir>/mlflow.db``.

    A relative SQLite path is made absolute against ``launch_dir``, so every job of a sweep,
    wherever Hydra runs it, writes to the same store.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{(launch_dir / uri.removeprefix('sqlite:///')).resolve()}"
    return uri


@dataclass(frozen=True)
class Store:
    """An MLflow tracking store and the experiment the runs go to."""

    uri: str
    client: MlflowClient
    experiment_id: str


def open_store(configured_uri: str | None, experiment: str, launch_dir: Path) -> Store:
    """The store ``resolve_tracking_uri`` picks, with ``experiment`` created if missing."""
    uri = resolve_tracking_uri(configured_uri, launch_dir)
    client, experiment_id = open_experiment(uri, experiment)
    return Store(uri, client, experiment_id)


def open_experiment(uri: str, experiment: str) -> tuple[MlflowClient, str]:
    """A client of the store at ``uri`` and the id of ``experiment``, created if missing.

    Raises TrackingError, with what to do, when the store cannot be reached, read or written.
    """
    if uri.startswith("sqlite:///"):
        _check_sqlite_file(Path(uri.removeprefix("sqlite:///")))
    elif uri.startswith(("http://", "https://")):
        check_server(uri)
    try:
        if uri.startswith("sqlite:///"):
            create_store(Path(uri.removeprefix("sqlite:///")), str(artifact_root(uri)))
        client = MlflowClient(uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            try:
                return client, client.create_experiment(experiment, artifact_location=artifact_root(uri))
            except MlflowException:  # another job created it first
                found = client.get_experiment_by_name(experiment)
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            raise TrackingError(
                f"tracking.experiment={experiment!r} is deleted in {uri}: restore it "
                f"(mlflow experiments restore --experiment-id {found.experiment_id}) or pick another name"
            )
        return client, found.experiment_id
    except TrackingError:
        raise
    except Exception as exc:
        message = (refusal(uri, exc, experiment) or full_disk(exc, store_name(uri))
                   or f"cannot use the MLflow tracking store {redact(uri)}: {redact(first_line(exc))}")
        raise TrackingError(message) from exc


@contextlib.contextmanager
def tracked_run(
    store: Store, run_name: str, tags: Mapping[str, str], parent_run_id: str | None = None, stop: Stop | None = None
) -> Iterator[str]:
    """Start a run and always end it: FINISHED, FAILED (with the error logged) or KILLED."""
    stop = stop or process_stop()
    client = store.client
    tags = {**tags, MLFLOW_RUN_NAME: run_name, PROCESS_TAG: process_tag()}
    if parent_run_id:
        tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    run_id = None
    try:
        with stop.held():  # a Ctrl-C as the run is created is raised once it can be ended
            run_id = guarded(client.create_run, store.experiment_id, run_name=run_name, tags=tags).info.run_id
        yield run_id
    except BaseException as exc:
        if run_id is None:
            raise
        interrupted = isinstance(exc, (KeyboardInterrupt, SystemExit))
        end_run(client, run_id, "KILLED" if interrupted else "FAILED", error=exc)
        raise
    end_run(client, run_id, "FINISHED")


class LostRun(PolyexpError):
    """A run whose process ended without ending it: killed (SIGKILL, out of memory), or its machine lost."""


def end_dead_runs(store: Store) -> None:
    """End, FAILED with why, the single runs (no parent: a sweep's parent ends its own jobs) still RUNNING
    in the experiment whose process on this host is gone. A run of another host, or whose process id is
    alive (even reused), is left as it is."""
    host = socket.gethostname()
    running = guarded(store.client.search_runs, [store.experiment_id], filter_string=(
        f"attributes.status = 'RUNNING' and tags.`{PROCESS_TAG}` LIKE '{host.replace(chr(39), '')}:%'"))
    for run in running:
        where = run.data.tags.get(PROCESS_TAG, "")
        if MLFLOW_PARENT_RUN_ID in run.data.tags or process_alive(where) is not False:
            continue
        reason = f"its process ({where}) ended without ending the run (killed, or out of memory)"
        log.error("run %s (%s): %s; marked FAILED", run.info.run_id, run.info.run_name, reason)
        end_run(store.client, run.info.run_id, "FAILED", error=LostRun(reason))


def process_tag() -> str:
    """``host:pid`` of this process, the value of a run's ``polyexp.process`` tag."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_alive(tag: str) -> bool | None:
    """Whether the process of a ``polyexp.process`` tag runs; None when this host cannot tell (another
    host's, or no tag). A reused process id reads as alive."""
    host, _, pid = tag.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def whole(uri: str) -> contextlib.AbstractContextManager[None]:
    """A block of writes to the store at ``uri`` that a signal does not cut in two, where that matters: on an
    SQLite store, a transaction cut by KeyboardInterrupt keeps the database locked against this very process's
    next write (the run's or the sweep's clean-up), for the busy timeout and then for good."""
    return process_stop().uninterrupted() if str(uri).startswith("sqlite") else contextlib.nullcontext()


def end_run(client: MlflowClient, run_id: str, status: str, error: BaseException | None = None) -> None:
    """Set a run's final status (and its error); warn, but do not raise, if the store is gone.

    The status (and the error's tag) go to the store before ``error.txt`` goes to the artifacts, so
    artifacts that cannot be written (the very error, often) leave no run RUNNING. An error too long
    for a full store still leaves the status to try, an update in place that may fit.
    """
    untagged = None
    if error is not None:
        message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        try:
            with whole(client.tracking_uri):
                client.set_tag(run_id, TAG_PREFIX + "error", redact(message)[:5000])
        except Exception as exc:
            if not full_disk(exc):
                log.warning("could not mark MLflow run %s as %s: %s", run_id, status, first_line(exc))
                return
            untagged = exc
    try:
        with whole(client.tracking_uri):
            client.set_terminated(run_id, status)
    except Exception as exc:
        log.warning("could not mark MLflow run %s as %s: %s", run_id, status, _reason(exc))
        return
    if untagged is not None:
        log.warning("MLflow run %s is %s without its error (tag polyexp.error): %s", run_id, status, _reason(untagged))
    if error is not None:
        try:
            client.log_text(run_id, redact("".join(traceback.format_exception(type(error), error,
                                                                              error.__traceback__))), "error.txt")
        except Exception as exc:
            log.warning("could not write error.txt of MLflow run %s: %s", run_id, _reason(exc))


def _reason(exc: BaseException) -> str:
    return "the disk is full" if full_disk(exc) else first_line(exc)


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    items = [Param(key, str(value)) for key, value in params.items()]
    for start in range(0, len(items), _BATCH_PARAMS):
        guarded(client.log_batch, run_id, params=items[start : start + _BATCH_PARAMS])


def log_tags(client: MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    """Set ``polyexp.<name>`` tags, in one call."""
    items = [RunTag(TAG_PREFIX + key, str(value)) for key, value in tags.items()]
    if items:
        guarded(client.log_batch, run_id, tags=items)


def log_metrics(
    client: MlflowClient, run_id: str, metrics: Iterable[tuple[str, float, int]], tags: Mapping[str, str] | None = None
) -> None:
    """Log ``(key, value, step)`` triples, and ``polyexp.<name>`` tags with the first of them, in as few
    calls as MLflow allows (1,000 entries a call, at most 100 of them tags)."""
    now = int(time.time() * 1000)
    items = [Metric(key, float(value), now, int(step)) for key, value, step in metrics]
    tag_items = [RunTag(TAG_PREFIX + key, str(value)) for key, value in (tags or {}).items()]
    first = _BATCH_METRICS - len(tag_items)
    rest = range(first, len(items), _BATCH_METRICS)
    batches = [items[:first], *(items[start : start + _BATCH_METRICS] for start in rest)]
    for number, batch in enumerate(batches):
        if batch or (number == 0 and tag_items):
            guarded(client.log_batch, run_id, metrics=batch, tags=tag_items if number == 0 else [])


def find_run(store: Store, tags: Mapping[str, str], status: str | None = None) -> Any | None:
    """The latest run of the store's experiment with these ``polyexp.`` tags (and status), or None."""
    conditions = [f"tags.`{TAG_PREFIX}{key}` = '{value}'" for key, value in tags.items()]
    if status is not None:
        conditions.append(f"attributes.status = '{status}'")
    runs = guarded(
        store.client.search_runs,
        [store.experiment_id],
        filter_string=" and ".join(conditions),
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return runs[0] if runs else None


def reopen_run(client: MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    """Mark an ended run RUNNING again, with ``tags`` updated: a resumed sweep's parent."""
    guarded(client.log_batch, run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])
    guarded(client.update_run, run_id, status="RUNNING")


def metric_series(client: MlflowClient, run_id: str, key: str) -> list[float]:
    """A metric's values ordered by step."""
    history = guarded(client.get_metric_history, run_id, key)
    return [m.value for m in sorted(history, key=lambda m: m.step)]


def git_commit(folder: Path) -> dict[str, str]:
    """MLflow's git-commit tag for ``folder``'s repository, or nothing outside a repository."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {MLFLOW_GIT_COMMIT: commit} if commit else {}


def guarded(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the MLflow client; turn its failures into one clear TrackingError. On an SQLite store a Ctrl-C
    waits for the call to end (:func:`whole`)."""
    uri = getattr(getattr(call, "__self__", None), "tracking_uri", "")
    try:
        with whole(uri):
            return call(*args, **kwargs)
    except Exception as exc:
        message = refusal(uri, exc) or full_disk(exc, store_name(uri), file="the MLflow run's artifacts")
        raise TrackingError(message or f"MLflow {call.__name__} failed: {first_line(exc)}") from exc


def log_folder(client: MlflowClient, run_id: str, folder: Path) -> None:
    """Log every file under ``folder`` as the run's artifacts, stored once where the disk allows.

    When the run's artifacts live in a local folder on the same file system (the default:
    ``mlartifacts/`` beside ``mlflow.db``), each file is hard-linked there: the job's folder and the
    MLflow run show the same files and the disk holds them once. Anywhere else (a tracking server,
    another file system) they are copied, and the job's folder is the copy a tracking failure cannot lose.
    """
    target = local_artifact_dir(guarded(client.get_run, run_id).info.artifact_uri)
    if target is not None:
        try:
            _link_tree(folder, target)
            return
        except OSError as exc:
            log.debug("copying the artifacts instead of linking them into %s: %s", target, exc.strerror)
    guarded(client.log_artifacts, run_id, str(folder))


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The folder of a run's artifacts when it is a local path or ``file:`` URI, else None."""
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    return Path(artifact_uri) if not parsed.scheme else None


def _link_tree(folder: Path, target: Path) -> None:
    """Hard-link every file under ``folder`` to the same place under ``target``; all of them or none."""
    linked: list[Path] = []
    try:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            link = target / path.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            os.link(path, link)
            linked.append(link)
    except OSError:
        for link in linked:
            link.unlink()
        raise


def _check_sqlite_file(path: Path) -> None:
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrackingError(
            f"the tracking store {path} cannot be written: its folder cannot be created ({exc.strerror}); "
            "set tracking.uri / MLFLOW_TRACKING_URI to a writable location"
        ) from None
    if path.exists():
        with open(path, "rb") as handle:
            header = handle.read(16)
        if header and header != b"SQLite format 3\x00":
            raise TrackingError(
                f"the tracking store {path} is not a SQLite database (corrupt, or another file): "
                "move it away, or set tracking.uri / MLFLOW_TRACKING_URI to another store"
            )
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise TrackingError(
            f"the tracking store {path} cannot be written (permission denied): "
            "set tracking.uri / MLFLOW_TRACKING_URI to a writable location"
        )


def check_server(uri: str) -> None:
    parts = urllib.parse.urlsplit(uri)  # credentials go to MLflow's client, not to the health check
    bare = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    try:
        with urllib.request.urlopen(f"{bare.rstrip('/')}/health", timeout=5):
            return
    except urllib.error.HTTPError:
        # It answers. A 401 or 403 here is no verdict on the credentials, which this request lacks
        # (MLflow's client sends them, and more kinds than these): refusal judges the first API call.
        return
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"cannot reach the MLflow tracking server at {redact(uri)} ({reason}): start it, or set "
            "MLFLOW_TRACKING_URI / tracking.uri to a running one"
        ) from None


def refusal(uri: str, exc: BaseException, experiment: str | None = None) -> str | None:
    """One line for a server that refused the credentials (401) or the user's rights (403), else None.

    With docs/sweeps.md's ``default_permission = READ`` a user reads another's experiment, so a 403 comes
    at the first write (creating a run), not when the experiment is opened.
    """
    status = exc.get_http_status_code() if isinstance(exc, MlflowException) else None
    if not uri.startswith(("http://", "https://")) or status not in (401, 403):
        return None
    uri = redact(uri)
    if status == 401:
        return (
            f"the MLflow tracking server at {uri} refused the credentials (HTTP 401): "
            "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a user it knows"
        )
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    what = f"tracking.experiment={experiment!r}" if experiment else "this experiment"
    return (
        f"the MLflow tracking server at {uri} denied {f'user {user!r}' if user else 'these credentials'} "
        f"access to {what} (HTTP 403): ask its admin for permission, or set "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a user who has it"
    )


def store_name(uri: str) -> str:
    """The tracking store as the user knows it: a SQLite store's file, or the URI (credentials hidden)."""
    return uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else redact(uri)


def artifact_root(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        return str(Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts")
    return None  # a server decides


def parameters_of(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config into ``{"data.n_samples": 1100, ...}`` for MLflow params."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(parameters_of(value, f"{prefix}{key}."))
        else:
            listed = isinstance(value, Sequence) and not isinstance(value, str)
            flat[f"{prefix}{key}"] = redacted(list(value) if listed else value)
    return flat
