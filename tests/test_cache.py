"""The trajectory cache: keys, reuse, atomic entries, corrupt entries, jobs racing for one entry."""

import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest

from polyexp.cache import main
from polyexp.core.identity import Identity
from polyexp.core.trajectory import Trajectory, read_trajectory, write_trajectory
from polyexp.run.trajectory_cache import TrajectoryCache

IDENTITY = Identity(config={"data": {"name": "blobs"}, "seed": 0, "epochs": 3}, code={"polyexp.core.training": "abc"},
                    libraries={"tensorflow": "2.21.0"}, platform={"onednn": "on"})


def trajectory(value: float = 1.0) -> Trajectory:
    return Trajectory(
        seeds=np.array([0, 1]),
        epochs=np.array([3, 2]),
        names=["mlp/dense/kernel", "mlp/dense/bias"],
        checkpoints=[np.full((2, 2, 2, 3), value, np.float32), np.full((2, 2, 3), value, np.float32)],
        curve_epochs=np.array([1, 2, 3]),
        history={"train_acc": np.array([[0.5, 0.6, 0.7]] * 2), "test_loss": np.array([[1.0, 0.9, 0.8]] * 2)},
        averages={"swa": [np.full((2, 2, 3), value, np.float32), np.full((2, 3), value, np.float32)]},
    )


def same(a: Trajectory, b: Trajectory) -> bool:
    return (
        a.epochs.tolist() == b.epochs.tolist() and a.names == b.names and a.seeds.tolist() == b.seeds.tolist()
        and a.curve_epochs.tolist() == b.curve_epochs.tolist()
        and all(np.array_equal(x, y) for x, y in zip(a.checkpoints, b.checkpoints, strict=True))
        and all(np.array_equal(a.history[k], b.history[k]) for k in a.history)
        and list(a.averages) == list(b.averages)
        and all(np.array_equal(x, y) for k in a.averages for x, y in zip(a.averages[k], b.averages[k], strict=True))
    )


def test_trains_once_then_reuses(tmp_path: Path):
    cache, calls = TrajectoryCache(tmp_path), []

    def train() -> Trajectory:
        calls.append(1)
        return trajectory()

    first, reused_first = cache.fetch(IDENTITY, train)
    second, reused_second = cache.fetch(IDENTITY, train)
    assert (reused_first, reused_second, len(calls)) == (False, True, 1)
    assert same(first, second)
    other = Identity({**IDENTITY.config, "seed": 1}, IDENTITY.code, IDENTITY.libraries, IDENTITY.platform)
    assert cache.fetch(other, train)[1] is False and len(calls) == 2


def test_a_failed_training_leaves_no_entry(tmp_path: Path):
    cache = TrajectoryCache(tmp_path)

    def train() -> Trajectory:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.fetch(IDENTITY, train)
    assert list(cache.folder.glob("*.npz")) == [] and list(cache.folder.glob(".*tmp")) == []


def test_a_corrupt_entry_is_retrained_with_a_warning(tmp_path: Path, caplog):
    cache = TrajectoryCache(tmp_path)
    cache.store(IDENTITY.key, trajectory(1.0))
    path = cache.folder / f"{IDENTITY.key}.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = b"\x00" * 16  # damage the middle of the file
    path.write_bytes(bytes(data))
    result, reused = cache.fetch(IDENTITY, lambda: trajectory(2.0))
    assert not reused and result.checkpoints[0][0, 0, 0, 0] == 2.0
    assert "is corrupt" in caplog.text and "training again" in caplog.text
    assert same(cache.load(IDENTITY.key), trajectory(2.0))


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

    result, reused = TrajectoryCache(Path(root)).fetch(IDENTITY, slow_train)
    Path(out).write_text(f"{reused} {result.checkpoints[0][0, 0, 0, 0]}")


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


def test_command_line_info_shows_what_each_entry_was_made_with_and_clear_empties(tmp_path: Path, capsys):
    TrajectoryCache(tmp_path).fetch(IDENTITY, trajectory)
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 trajectories" in out and IDENTITY.key in out
    assert "config: data=blobs seed=0 epochs=3" in out and "libraries: tensorflow 2.21.0" in out
    assert "platform: onednn on" in out and "code: 1 modules, polyexp.core.training abc" in out
    assert main(["clear", str(tmp_path)]) == 0
    assert not list((tmp_path / "trajectories").glob("*.npz"))
