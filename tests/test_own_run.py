"""Your own run, as a new user brings it: raw features in an .npz of their own splits, a plain Keras `fit`
with CheckpointWindow; polyexp's n=1 is the user's own `model.evaluate`, and files that do not fit fail
in one line before any run exists."""

from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import compose, table

from polyexp.core.errors import ConfigError
from polyexp.core.outcome import compute_outcome
from polyexp.core.settings import plan_from
from polyexp.keras import CheckpointWindow


def raw_rows(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes in 4 features far from standardised (offsets of 5, scales of 2): standardising them
    would change every prediction."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=rows)
    x = 5 + 2 * (rng.normal(size=(rows, 4)) + 3 * np.eye(3, 4)[y])
    return x.astype(np.float32), y


def write_splits(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    splits = {split: raw_rows(rows, seed) for seed, (split, rows) in enumerate((("train", 120), ("val", 90),
                                                                                 ("test", 110)))}
    np.savez(path, **{f"{axis}_{split}": values[i] for split, values in splits.items()
                      for i, axis in enumerate("xy")})
    return splits


def users_model(x_train: np.ndarray, normalise: bool, width: int = 8) -> keras.Model:
    keras.utils.set_random_seed(0)  # its initial weights, whatever the tests before it built
    inputs = keras.Input((4,))
    h = inputs
    if normalise:
        norm = keras.layers.Normalization()
        norm.adapt(x_train)
        h = norm(h)
    h = keras.layers.Dense(width, activation="relu")(h)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))


def users_fit(model: keras.Model, x: np.ndarray, y: np.ndarray, folder: Path, *, weights_only: bool = False) -> None:
    keras.utils.set_random_seed(0)
    model.compile(keras.optimizers.Adam(0.01),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=10, batch_size=16, verbose=0,
              callbacks=[CheckpointWindow(folder, 5, weights_only=weights_only)])


@pytest.mark.parametrize("normalise", [False, True], ids=["raw features", "a Normalization layer"])
def test_n1_is_the_users_own_evaluate_of_the_last_checkpoint_on_their_own_rows(tmp_path, monkeypatch, normalise):
    monkeypatch.chdir(tmp_path)
    splits = write_splits(tmp_path / "rows.npz")
    model = users_model(splits["train"][0], normalise)
    users_fit(model, *splits["train"], tmp_path / "ckpt")

    plan = plan_from(compose(["trajectory=files", "trajectory.glob=ckpt/*.keras", "data=npz", "data.path=rows.npz"]))
    data = plan.load_data()
    for split, (x, y) in splits.items():  # the rows as the file holds them: not standardised, not re-split
        np.testing.assert_array_equal(data.split(split)[0], x)
        np.testing.assert_array_equal(data.split(split)[1], y)
    outcome = compute_outcome(plan, data)

    last = keras.saving.load_model("ckpt/epoch_0010.keras")
    for split in ("val", "test"):
        x, y = splits[split]
        theirs = last.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
        assert outcome.scores[f"{split}_single_acc"][0, 0] == round(theirs["accuracy"] * len(y)) / len(y)
        # The loss of the probabilities, clipped as Keras clips them (evaluate takes a softmax's logits
        # instead, which differs where a probability is below 1e-7)
        picked = np.clip(last.predict(x, verbose=0)[np.arange(len(y)), y].astype(np.float64), 1e-7, 1 - 1e-7)
        assert outcome.scores[f"{split}_single_loss"][0, 0] == pytest.approx(-np.mean(np.log(picked)), rel=1e-5)
        # n=1's average is the same model: no BatchNorm to recompute
        assert outcome.scores[f"{split}_average_acc"][0, 0] == outcome.scores[f"{split}_single_acc"][0, 0]
    assert outcome.summary["last_test_acc"] == outcome.scores["test_single_acc"][0, 0]
    assert outcome.summary["last_test_acc"] > 0.5  # it learnt something (3 classes)


def test_a_weights_file_that_does_not_fit_the_model_fails_in_one_line_naming_the_layer_and_shapes(tmp_path,
                                                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    splits = write_splits(tmp_path / "rows.npz")
    users_fit(users_model(splits["train"][0], False, width=20), *splits["train"], tmp_path / "ckpt",
              weights_only=True)
    plan = plan_from(compose(["trajectory=files", "trajectory.glob=ckpt/*.weights.h5", "data=npz",
                              "data.path=rows.npz", "model.hidden=[25]"]))
    with pytest.raises(ConfigError) as error:
        plan.load_data()
    text = str(error.value)
    assert "\n" not in text and text.startswith("trajectory.glob='ckpt/*.weights.h5' is not allowed: ")
    assert "ckpt/epoch_0010.weights.h5 does not fit model plugin 'mlp''s network" in text
    assert "layer dense holds (4, 20), (20,) in the file, (4, 25), (25,) in the network" in text


def test_two_architectures_in_one_glob_name_the_layer_and_both_shapes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, _ = raw_rows(10, 0)
    for run, width in (("a", 8), ("b", 9)):
        Path(f"ckpt/{run}").mkdir(parents=True)
        users_model(x, False, width=width).save(f"ckpt/{run}/epoch_1.keras")
    with pytest.raises(ConfigError) as error:
        plan_from(compose(["trajectory=files", "trajectory.glob=ckpt/*/*.keras"]))
    assert ("ckpt/a/epoch_1.keras and ckpt/b/epoch_1.keras are models of different architectures: layer dense "
            "holds (4, 8), (8,) in ckpt/a/epoch_1.keras, (4, 9), (9,) in ckpt/b/epoch_1.keras") in str(error.value)


def test_a_file_of_x_and_y_alone_is_refused_with_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = raw_rows(60, 0)
    np.savez("rows.npz", x=x, y=y)
    users_fit(users_model(x, False), x, y, tmp_path / "ckpt")
    plan = plan_from(compose(["trajectory=files", "trajectory.glob=ckpt/*.keras", "data=npz", "data.path=rows.npz"]))
    with pytest.raises(ConfigError, match="cannot know which rows your model trained on"):
        plan.load_data()


@pytest.mark.slow
def test_the_cli_refuses_unfitting_files_before_any_run_and_scores_fitting_ones(cli):
    splits = write_splits(cli.workdir / "rows.npz")
    users_fit(users_model(splits["train"][0], False, width=20), *splits["train"], cli.workdir / "ckpt",
              weights_only=True)
    args = ["trajectory=files", "trajectory.glob=ckpt/*.weights.h5", "data=npz", "data.path=rows.npz"]
    refused = cli.run(*args, "model.hidden=[25]")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr and cli.runs() == []
    (line,) = [line for line in refused.stderr.splitlines() if "does not fit" in line]
    assert "layer dense holds (4, 20), (20,) in the file, (4, 25), (25,) in the network" in line
    assert len(refused.stderr.strip().splitlines()) <= 4  # Hydra's wrapping at most; no Keras warning blocks

    scored = cli.run(*args, "model.hidden=[20]")
    assert scored.returncode == 0, scored.stderr
    assert [n for n, _, _ in table(scored.stdout)] == [1, 2, 3, 4, 5]
    (run,) = cli.runs()
    assert run.info.status == "FINISHED"
