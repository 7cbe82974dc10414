"""Bad input through the real CLI: one clear message naming the field, no traceback, no FINISHED run."""

import pytest
from conftest import make_cli

pytestmark = pytest.mark.slow

ROWS = [
    (["averaging=nope"], ["averaging=nope: no such averaging option; options: equal, exp, greedy_soup, linear"]),
    (["averaging=exponential"], ["averaging=exponential: no such averaging option (did you mean exp?); options: "]),
    (["data=nope"], ["data=nope: no such data option; options: ", "digits"]),
    (["model=cnnn"], ["model=cnnn: no such model option (did you mean cnn?); options: cnn, mlp"]),
    (["optimizer=nope"], ["optimizer=nope: no such optimizer option; options: adam"]),
    (["window=nope"], ["window=nope: no such window option; options: ", "strided"]),
    (["averaging=equal,exponential", "-m"], ["averaging=exponential: no such averaging option (did you mean exp?)"]),
    (["averaging.alpha=-1"], ["averaging.alpha is not a field of averaging=equal (it has no fields); alpha is a "
                              "field of averaging=exp: choose one of them"]),
    (["averaging=exp", "averaging.alpha=abc"], ["Value 'abc' of type 'str' could not be converted to Float",
                                                "full_key: averaging.alpha"]),
    (["epochs=1.5"], ["Value '1.5' of type 'float' could not be converted to Integer", "full_key: epochs"]),
    (["averaging=exp", "averaging.alpha=0"], ["averaging.alpha=0.0 is not allowed: it must be > 0"]),
    (["window.size=0"], ["window.size=0 is not allowed: it must be >= 1"]),
    (["window.size=600"], ["window.size=600 with window.stride=1 spans 600 epochs, more than epochs=500"]),
    (["window.stride=100"], ["window.size=10 with window.stride=100 spans 901 epochs, more than epochs=500"]),
    (["epochs=0"], ["epochs=0 is not allowed: it must be >= 1"]),
    (["batch_size=0"], ["batch_size=0 is not allowed: it must be >= 1"]),
    (["model.hidden=[25,0]"], ["model.hidden=[25, 0] is not allowed: it must each be >= 1"]),
    (["optimizer.learning_rate=0"], ["optimizer.learning_rate=0.0 is not allowed: it must be > 0"]),
    (["data.n_train=0"], ["data.n_train=0 is not allowed: it must be >= 1"]),
    (["data.n_train=1100"], ["data.n_train=1100 is not allowed: it must be below the number of rows (1100)"]),
    (["data.n_train=2"], ["data.n_train=2 is not allowed: the training rows then lack class 1"]),
]


@pytest.mark.parametrize(("overrides", "messages"), ROWS, ids=[" ".join(o) for o, _ in ROWS])
def test_bad_values_fail_with_one_clear_message(tmp_path, overrides, messages):
    cli = make_cli(tmp_path)
    result = cli.run(*overrides)
    assert result.returncode != 0
    for message in messages:
        assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert all(run.info.status != "FINISHED" for run in cli.runs())
    if "could not be converted" not in messages[0]:  # polyexp's own messages; a type error is Hydra's, whole
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # no Hydra wrapper, no trailer
        assert result.returncode == 1


def test_full_error_shows_the_traceback(tmp_path):
    result = make_cli(tmp_path).run("epochs=0", env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert "epochs=0 is not allowed" in result.stderr


def test_an_output_folder_that_cannot_be_written(tmp_path):
    cli = make_cli(tmp_path)
    (cli.workdir / "blocker").write_text("a file where a folder should go")
    for args in (["hydra.run.dir=blocker/out"], ["hydra.sweep.dir=blocker/out", "-m"]):
        result = cli.run(*args)
        assert result.returncode != 0
        field, folder = args[0].split("=")[0], cli.workdir / "blocker" / "out"
        assert f"{field}='{folder}' is not allowed: the folder cannot be written" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_tracking_store_that_cannot_be_written(tmp_path):
    cli = make_cli(tmp_path)
    (cli.workdir / "blocker").write_text("")
    store = cli.workdir / "blocker" / "mlflow.db"
    result = cli.run(env={"MLFLOW_TRACKING_URI": f"sqlite:///{store}"})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"the tracking store {store} cannot be written" in result.stderr
    assert not list(cli.workdir.rglob("results.csv"))


def test_a_corrupt_sqlite_store(tmp_path):
    cli = make_cli(tmp_path)
    cli.store.write_bytes(b"not a database, just bytes" * 100)
    for args in ([], ["averaging=exp", "averaging.alpha=1,2", "-m"]):
        result = cli.run(*args)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert f"the tracking store {cli.store} is not a SQLite database" in result.stderr
    assert cli.store.read_bytes() == b"not a database, just bytes" * 100  # left as it was
