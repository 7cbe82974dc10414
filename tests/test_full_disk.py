"""A full disk, for real: a tiny tmpfs (mounting one needs root) holds the store, the outputs or both.

Each failure ends in one line that says the disk is full and names what could not be written, with
no traceback; the run ends FAILED where the store still takes its status, and what was computed
stays in the job's folder or the store, wherever there is room.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import make_cli

from polyexp.core.errors import PolyexpError, TrackingError, full_disk
from polyexp.core.files import make_folder, write_text

FULL_STORE = ("the disk is full: cannot write to the MLflow tracking store {} (sqlite: database or disk is full); "
              "free space or set tracking.uri / MLFLOW_TRACKING_URI elsewhere")


@pytest.fixture
def disk(tmp_path: Path):
    """A 2 MiB tmpfs, unmounted after the test."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)  # an MLflow client still holds the store


def fill(disk: Path, leave: int = 0) -> None:
    """Fill ``disk`` with a file, all but ``leave`` bytes."""
    stat = os.statvfs(disk)
    (disk / "filler").write_bytes(bytes(stat.f_bavail * stat.f_frsize - leave))


def sqlite_full(path: Path) -> sqlite3.OperationalError:
    """SQLite's own "database or disk is full", from a database allowed no more pages."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x BLOB)")
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full") as raised:
        db.execute("INSERT INTO t VALUES (?)", (bytes(100_000),))
    db.close()
    return raised.value


def device_full() -> OSError:
    """The kernel's ENOSPC, from /dev/full."""
    with open("/dev/full", "wb", buffering=0) as handle, pytest.raises(OSError) as raised:
        handle.write(b"x")
    assert raised.value.errno == errno.ENOSPC
    return raised.value


def test_a_full_disk_is_found_anywhere_in_the_chain(tmp_path):
    sqlite_error = sqlite_full(tmp_path / "t.db")
    assert full_disk(sqlite_error, "/data/mlflow.db") == FULL_STORE.format("/data/mlflow.db")
    try:  # as SQLAlchemy and MLflow wrap it, and as polyexp's guarded does
        try:
            raise RuntimeError("(raised as a result of Query-invoked autoflush) ...") from sqlite_error
        except RuntimeError as wrapped:
            raise TrackingError("MLflow log_batch failed") from wrapped
    except TrackingError as exc:
        assert full_disk(exc, "/data/mlflow.db") == FULL_STORE.format("/data/mlflow.db")

    oserror = device_full()
    assert full_disk(oserror, file="the artifacts") == (
        "the disk is full: cannot write the artifacts (No space left on device)")
    for later in (ValueError("something else"), KeyboardInterrupt()):  # raised while the full disk was handled
        try:
            try:
                raise oserror
            except OSError:
                raise later from None
        except BaseException as exc:  # a Ctrl-C is never a full disk, whatever it interrupted
            expected = "the disk is full: cannot write a file (No space left on device)"
            assert full_disk(exc) == (expected if isinstance(exc, ValueError) else None)

    named = OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), "/home/me/out.csv")
    assert full_disk(named) == f"the disk is full: cannot write /home/me/out.csv ({os.strerror(errno.EDQUOT)})"
    for other in (PermissionError(errno.EACCES, "Permission denied", "/x"), OSError("disk full"),
                  sqlite3.OperationalError("database is locked"), ValueError("database or disk is full")):
        assert full_disk(other) is None


def test_a_file_that_does_not_fit_is_named_and_not_left_half_written(disk):
    fill(disk)
    target = disk / "out" / "results.csv"
    target.parent.mkdir()
    with pytest.raises(OSError) as raised:
        write_text(target, "n,acc\n" * 10_000)
    assert full_disk(raised.value) == f"the disk is full: cannot write {target} (No space left on device)"
    assert list(target.parent.iterdir()) == []

    with pytest.raises(PolyexpError, match=re.escape(f"the disk is full: cannot write in {disk / 'run'} (")):
        make_folder(disk / "run", "hydra.run.dir")  # checked before Hydra writes into it
    assert list((disk / "run").iterdir()) == []


def test_the_job_log_skips_the_lines_a_full_disk_refuses(disk, capfd):
    from polyexp.run.quiet import JobLogFile

    handler = JobLogFile(disk / "polyexp.log")
    logger = logging.getLogger("test_full_disk")
    logger.addHandler(handler)
    try:
        fill(disk)
        for n in range(3):
            logger.warning("line %d", n)
    finally:
        logger.removeHandler(handler)
        with contextlib.suppress(OSError):  # the lines refused are still in its buffer
            handler.close()
    assert "Logging error" not in capfd.readouterr().err


def test_mlflow_on_a_full_store_fails_in_one_line(disk, empty_store, capfd):
    from polyexp.run import tracking

    shutil.copyfile(empty_store, disk / "mlflow.db")
    store = tracking.open_store(f"sqlite:///{disk / 'mlflow.db'}", "polyexp", disk)
    run_id = tracking.guarded(store.client.create_run, store.experiment_id).info.run_id
    fill(disk)
    with pytest.raises(TrackingError) as raised:
        tracking.log_params(store.client, run_id, {f"p{n}": "v" * 200 for n in range(100)})
    assert str(raised.value) == FULL_STORE.format(disk / "mlflow.db")
    assert capfd.readouterr().err == ""  # MLflow's own traceback of the error is held back


def test_a_run_whose_error_does_not_fit_still_ends(disk, empty_store, caplog):
    from polyexp.run import tracking

    shutil.copyfile(empty_store, disk / "mlflow.db")
    store = tracking.open_store(f"sqlite:///{disk / 'mlflow.db'}", "polyexp", disk)
    run_id = tracking.guarded(store.client.create_run, store.experiment_id).info.run_id
    fill(disk, leave=16 * 1024)  # room for the status, an update in place, but not for a long error's tag
    tracking.end_run(store.client, run_id, "FAILED", error=RuntimeError("x" * 6000))
    (disk / "filler").unlink()
    run = store.client.get_run(run_id)
    assert run.info.status == "FAILED" and "polyexp.error" not in run.data.tags
    assert f"MLflow run {run_id} is FAILED without its error (tag polyexp.error): the disk is full" in caplog.text


def last_lines(result: subprocess.CompletedProcess) -> str:
    return "\n".join((result.stdout + result.stderr).strip().splitlines()[-4:])


@pytest.mark.slow
def test_a_job_whose_disk_fills_up(disk, empty_store):
    """The store and the job's folder on one nearly full disk: the figures do not fit."""
    cli = make_cli(disk)  # mlflow.db, outputs/ and the trajectory cache on the tiny disk
    shutil.copyfile(empty_store, cli.store)
    fill(disk, leave=200 * 1024)
    result = cli.run("epochs=20")
    print(last_lines(result))
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    refused = re.findall(r"^the disk is full: cannot write (.+) \(No space left on device\)$", result.stderr, re.M)
    assert refused and Path(refused[-1]).is_relative_to(disk / "outputs")
    (disk / "filler").unlink()
    (run,) = cli.runs()
    assert run.info.status == "FAILED"
    assert run.data.tags["polyexp.error"] == f"OSError: [Errno 28] No space left on device: '{refused[-1]}'"


@pytest.mark.slow
def test_a_job_whose_store_fills_up(disk, tmp_path, empty_store):
    """The store on a nearly full disk, the job's folder on another: the metrics do not fit in the store."""
    store = disk / "mlflow.db"
    shutil.copyfile(empty_store, store)
    fill(disk, leave=32 * 1024)
    cli = make_cli(tmp_path / "work")
    result = cli.run("epochs=20", env={"MLFLOW_TRACKING_URI": f"sqlite:///{store}"})
    print(last_lines(result))
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert FULL_STORE.format(store) in result.stderr.splitlines()
    (disk / "filler").unlink()
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("polyexp").experiment_id])
    assert run.info.status == "FAILED"  # not left RUNNING: its status still fits
    assert run.data.tags["polyexp.error"] == f"TrackingError: {FULL_STORE.format(store)}"
    (results,) = (cli.workdir / "outputs").rglob("results.csv")  # what the store could not take
    assert results.read_text().startswith("seed,n,epoch,")
