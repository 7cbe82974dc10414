"""What your own run's learning rate was (trajectory=files): CheckpointWindow records each epoch's step
and rate as Keras ran them, the files' plot draws that record (or says there is none), never polyexp's
own optimizer config, for any epoch count."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import compose
from matplotlib.figure import Figure
from test_checkpoint_files import keras_mlp, save

from polyexp.core.errors import ConfigError
from polyexp.core.identity import job_identity
from polyexp.core.models import MODELS, build_model
from polyexp.core.outcome import compute_outcome
from polyexp.core.settings import plan_from
from polyexp.core.trajectory_sources import RECORD, find_checkpoints
from polyexp.keras import CheckpointWindow
from polyexp.run import outputs

DATA_ARGS = ["data.n_val=200"]
UNKNOWN = "learning rate: unknown (the files' run recorded none; CheckpointWindow records it)"
ROWS = np.random.default_rng(0).normal(size=(100, 2)).astype("float32"), np.arange(100) % 3  # 7 batches of 16


class KerasOwn(keras.callbacks.Callback):
    """The rate each step runs with, read from the optimizer just before it, and the steps at each epoch's end."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []
        self.steps: list[int] = []

    def on_train_batch_begin(self, batch, logs=None) -> None:
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.steps.append(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))


def record(folder: Path) -> dict[str, list]:
    entries = json.loads((folder / RECORD).read_text())["epochs"]
    return {key: [entry[key] for entry in entries] for key in ("epoch", "step", "learning_rate")}


@pytest.mark.parametrize("rate", [
    0.05,
    keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=5, decay_rate=0.5),
    keras.optimizers.schedules.PiecewiseConstantDecay([6, 13], [0.1, 0.05, 0.01]),  # changes at epoch ends
], ids=["constant", "exponential", "piecewise"])
def test_the_record_holds_the_steps_and_rates_keras_ran(tmp_path, rate):
    model, own = keras_mlp(), KerasOwn()
    model.compile(keras.optimizers.SGD(rate), "sparse_categorical_crossentropy")
    model.fit(*ROWS, epochs=4, batch_size=16, verbose=0, callbacks=[own, CheckpointWindow(tmp_path, 2)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [RECORD, "epoch_0003.keras", "epoch_0004.keras"]
    found = record(tmp_path)
    assert found["epoch"] == [1, 2, 3, 4] and found["step"] == own.steps == [7, 14, 21, 28]
    assert found["learning_rate"] == pytest.approx([own.rates[step - 1] for step in own.steps], rel=1e-6)
    assert len(set(found["learning_rate"])) == (1 if rate == 0.05 else 4 if "Exp" in repr(rate) else 3)


def test_a_resumed_fit_continues_the_record(tmp_path):
    model = keras_mlp()
    model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    model.fit(*ROWS, epochs=3, batch_size=16, verbose=0, callbacks=[CheckpointWindow(tmp_path, 2, weights_only=True)])
    model.optimizer.learning_rate = 0.02
    model.fit(*ROWS, initial_epoch=3, epochs=5, batch_size=16, verbose=0,
              callbacks=[CheckpointWindow(tmp_path, 2, weights_only=True)])
    found = record(tmp_path)
    assert found["epoch"] == [1, 2, 3, 4, 5] and found["step"] == [7, 14, 21, 28, 35]
    assert found["learning_rate"] == pytest.approx([0.05] * 3 + [0.02] * 2, rel=1e-6)
    assert find_checkpoints(str(tmp_path / "*")).records[0].epochs == (1, 2, 3, 4, 5)  # the record is no checkpoint


@pytest.mark.parametrize("text", ["{not json", '{"epochs": [{"epoch": 1}]}', '{"epochs": [{"epoch": 0, "step": 7, '
                                                                            '"learning_rate": 0.1}]}'])
def test_a_corrupt_record_fails_in_one_line_naming_the_glob_and_the_file(tmp_path, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    save(keras_mlp(), "ckpt/epoch_1.keras")
    Path("ckpt", RECORD).write_text(text)
    with pytest.raises(ConfigError) as error:
        plan_from(compose(["trajectory=files", "trajectory.glob=ckpt/*"]))
    message = str(error.value)
    assert message.startswith("trajectory.glob='ckpt/*' is not allowed: ") and "\n" not in message
    assert f"ckpt/{RECORD} is not a readable CheckpointWindow record" in message


def fit_run(data, folder: Path, epochs: int, rate: float, *, suffix: str, recorded: bool = True) -> None:
    """A plain Keras fit keeping the last 5 epochs: with CheckpointWindow, or with ModelCheckpoint (no record)."""
    keras.utils.set_random_seed(0)
    weights_only = suffix == ".weights.h5"
    model = build_model(MODELS["mlp"].bind({"hidden": [8]}), data) if weights_only else keras_mlp()
    model.compile(keras.optimizers.SGD(rate, momentum=0.9), "sparse_categorical_crossentropy")
    folder.mkdir(parents=True)
    callback = (CheckpointWindow(folder, 5, weights_only=weights_only) if recorded else
                keras.callbacks.ModelCheckpoint(str(folder / f"epoch_{{epoch:04d}}{suffix}"),
                                                save_weights_only=weights_only))
    batches = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train)).batch(16)  # less time per epoch
    model.fit(batches, epochs=epochs, shuffle=False, verbose=0, callbacks=[callback])
    for old in sorted(folder.glob(f"*{suffix}"))[:-5]:
        old.unlink()


def learning_curves(monkeypatch, glob: str, data, suffix: str) -> Figure:
    """The learning-curves figure of the job that scores ``glob`` (every output written as a job writes it)."""
    drawn = {}
    write_png = outputs.write_png
    monkeypatch.setattr(outputs, "write_png", lambda path, figure: (drawn.update({path.stem: figure}),
                                                                    write_png(path, figure)))
    plan = plan_from(compose([*DATA_ARGS, "trajectory=files", f"trajectory.glob={glob}",
                              *(["model.hidden=[8]"] if suffix == ".weights.h5" else [])]))
    outputs.write_outputs(Path("out"), plan, data, compute_outcome(plan, data), "own", job_identity(plan))
    assert (Path("out/plots/learning_curves.png")).stat().st_size > 0
    return drawn["learning_curves"]


def rate_axes(figure: Figure) -> tuple:
    (twin,) = [ax for ax in figure.axes if ax.get_ylabel() == "learning rate"]
    return figure.axes[3], twin


@pytest.mark.parametrize(("epochs", "suffix", "rates"), [
    (30, ".keras", [0.05]),
    (40, ".weights.h5", [0.05, 0.03]),  # two runs, with different rates: the first's is drawn
], ids=["30-keras-one-run", "40-h5-two-runs"])
def test_the_files_plot_draws_the_rate_their_run_recorded(tmp_path, monkeypatch, epochs, suffix, rates):
    monkeypatch.chdir(tmp_path)
    data = plan_from(compose(DATA_ARGS)).load_data()
    for seed, rate in enumerate(rates):
        fit_run(data, Path("ckpt") / f"seed_{seed}", epochs, rate, suffix=suffix)
    figure = learning_curves(monkeypatch, "ckpt/*/*", data, suffix)
    whole, twin = rate_axes(figure)
    (line,) = whole.lines
    assert line.get_xdata().tolist() == list(range(1, epochs + 1))
    assert line.get_ydata() == pytest.approx(record(Path("ckpt/seed_0"))["learning_rate"])
    assert line.get_ydata() == pytest.approx([0.05] * epochs, rel=1e-6)  # the run's, not polyexp's default 0.01
    differ = " (the runs' records differ)" if len(rates) > 1 else ""
    assert whole.get_title().replace("\n", " ") == (f"the learning rate of the first run, ckpt/seed_0{differ}"
                                                     if differ else "the learning rate the run recorded")
    (members,) = [line for line in twin.lines if line.get_label() == "members' rate (epoch ends)"]
    assert sorted(members.get_xdata()) == list(range(epochs - 4, epochs + 1))
    assert members.get_ydata() == pytest.approx([0.05] * 5, rel=1e-6)


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_files_with_no_record_say_their_rate_is_unknown(tmp_path, monkeypatch, suffix):
    monkeypatch.chdir(tmp_path)
    data = plan_from(compose(DATA_ARGS)).load_data()
    fit_run(data, Path("ckpt"), 40 if suffix == ".keras" else 30, 0.05, suffix=suffix, recorded=False)
    figure = learning_curves(monkeypatch, f"ckpt/*{suffix}", data, suffix)
    assert figure.axes[3].get_title().replace("\n", " ") == UNKNOWN and not figure.axes[3].axison
    assert all(ax.get_ylabel() != "learning rate" for ax in figure.axes)  # nothing drawn from the config


@pytest.mark.slow
def test_the_readme_command_scores_files_of_any_epoch_count(cli):
    data = plan_from(compose()).load_data()
    fit_run(data, cli.workdir / "ckpt", 30, 0.05, suffix=".keras")
    result = cli.run("trajectory=files", "trajectory.glob=ckpt/*")  # the record matched too: it is skipped
    assert result.returncode == 0, result.stderr
    (run,) = cli.runs()
    assert (Path(run.data.tags["polyexp.output_dir"]) / "plots" / "learning_curves.png").stat().st_size > 0
