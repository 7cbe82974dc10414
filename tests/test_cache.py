"""The trajectory cache: keys, reuse, atomic entries, corrupt entries, jobs racing for one entry."""

import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest

from polyexp.cache import TrajectoryCache, main, training_key
from polyexp.trajectory import Trajectory, read_trajectory, write_trajectory


def trajectory(value: float = 1.0) -> Trajectory:
    return Trajectory(
        epochs=np.array([3, 2]),
        names=["mlp/dense/kernel", "mlp/dense/bias"],
        checkpoints=[np.full((2, 2, 3), value, np.float32), np.full((2, 3), value, np.float32)],
        history={"train_acc": np.array([0.5, 0.6, 0.7]), "test_loss": np.array([1.0, 0.9, 0.8])},
    )


def same(a: Trajectory, b: Trajectory) -> bool:
    return (
        a.epochs.tolist() == b.epochs.tolist() and a.names == b.names
        and all(np.array_equal(x, y) for x, y in zip(a.checkpoints, b.checkpoints, strict=True))
        and all(np.array_equal(a.history[k], b.history[k]) for k in a.history)
    )


def test_key_depends_on_the_training_config_and_code_only():
    config = {"seed": 0, "epochs": 500, "data": {"name": "blobs"}}
    assert training_key(config, 1) == training_key(dict(reversed(list(config.items()))), 1)
    assert training_key(config, 1) != training_key({**config, "seed": 1}, 1)
    assert training_key(config, 1) != training_key(config, 2)


def test_trains_once_then_reuses(tmp_path: Path):
    cache, calls = TrajectoryCache(tmp_path), []

    def train() -> Trajectory:
        calls.append(1)
        return trajectory()

    first, reused_first = cache.fetch("k", train)
    second, reused_second = cache.fetch("k", train)
    assert (reused_first, reused_second, len(calls)) == (False, True, 1)
    assert same(first, second)


def test_a_failed_training_leaves_no_entry(tmp_path: Path):
    cache = TrajectoryCache(tmp_path)

    def train() -> Trajectory:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.fetch("k", train)
    assert list(cache.folder.glob("*.npz")) == [] and list(cache.folder.glob(".*tmp")) == []


def test_a_corrupt_entry_is_retrained_with_a_warning(tmp_path: Path, caplog):
    cache = TrajectoryCache(tmp_path)
    cache.store("k", trajectory(1.0))
    path = cache.folder / "k.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = b"\x00" * 16  # damage the middle of the file
    path.write_bytes(bytes(data))
    result, reused = cache.fetch("k", lambda: trajectory(2.0))
    assert not reused and result.checkpoints[0][0, 0, 0] == 2.0
    assert "is corrupt" in caplog.text and "training again" in caplog.text
    assert same(cache.load("k"), trajectory(2.0))


def test_an_entry_under_the_wrong_key_is_not_trusted(tmp_path: Path):
    cache = TrajectoryCache(tmp_path)
    cache.store("k", trajectory())
    (cache.folder / "k.npz").rename(cache.folder / "other.npz")
    assert cache.load("other") is None


def test_write_is_atomic(tmp_path: Path, monkeypatch):
    path = tmp_path / "t.npz"
    write_trajectory(path, trajectory(1.0))

    def broken_savez(handle, **arrays):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        write_trajectory(path, trajectory(2.0))
    assert same(read_trajectory(path)[0], trajectory(1.0))  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]


def _fetch_in_process(root: str, marker: str, out: str) -> None:
    def slow_train() -> Trajectory:
        with open(marker, "a") as handle:
            handle.write("trained\n")
        time.sleep(1.0)
        return trajectory(3.0)

    result, reused = TrajectoryCache(Path(root)).fetch("shared", slow_train)
    Path(out).write_text(f"{reused} {result.checkpoints[0][0, 0, 0]}")


def test_parallel_jobs_train_an_entry_once(tmp_path: Path):
    marker = tmp_path / "marker"
    context = multiprocessing.get_context("fork")
    jobs = [
        context.Process(target=_fetch_in_process, args=(str(tmp_path / "cache"), str(marker), str(tmp_path / f"o{i}")))
        for i in range(3)
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(30)
    assert [job.exitcode for job in jobs] == [0, 0, 0]
    assert marker.read_text() == "trained\n"
    outcomes = sorted((tmp_path / f"o{i}").read_text() for i in range(3))
    assert outcomes == ["False 3.0", "True 3.0", "True 3.0"]


def test_command_line_info_and_clear(tmp_path: Path, capsys):
    TrajectoryCache(tmp_path).store("k", trajectory())
    assert main(["info", str(tmp_path)]) == 0
    assert "1 trajectories" in capsys.readouterr().out
    assert main(["clear", str(tmp_path)]) == 0
    assert not list((tmp_path / "trajectories").glob("*.npz"))
