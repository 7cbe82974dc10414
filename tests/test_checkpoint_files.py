"""Your own checkpoints (trajectory=files): plain Keras `fit` with polyexp.keras.CheckpointWindow, then
polyexp's scores of those files against a numpy forward pass; bad input in one line at planning."""

from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import compose, table

from polyexp.core.errors import ConfigError
from polyexp.core.identity import job_identity
from polyexp.core.models import MODELS, build_model
from polyexp.core.outcome import compute_outcome
from polyexp.core.settings import plan_from
from polyexp.keras import CheckpointWindow

DATA_ARGS = ["data.n_val=200"]


def keras_mlp(width: int = 8) -> keras.Model:
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(width, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])


def fit(model: keras.Model, data, folder: Path, *, epochs: int, size: int, seed: int, weights_only=False) -> None:
    """Plain Keras training, the callback keeping the last ``size`` epochs in ``folder``."""
    keras.utils.set_random_seed(seed)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=16, verbose=0,
              callbacks=[CheckpointWindow(folder, size, weights_only=weights_only)])


def probabilities(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    w1, b1, w2, b2 = (w.astype(np.float64) for w in weights)
    logits = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("weights_only", [False, True])
def test_checkpoints_of_a_keras_fit_score_as_a_numpy_forward_pass(tmp_path, monkeypatch, weights_only):
    monkeypatch.chdir(tmp_path)
    data = plan_from(compose(DATA_ARGS)).load_data()
    suffix = ".weights.h5" if weights_only else ".keras"
    for seed in (0, 1):
        model = build_model(MODELS["mlp"].bind({"hidden": [8]}), data) if weights_only else keras_mlp()
        fit(model, data, Path("ckpt") / f"seed_{seed}", epochs=6, size=4, seed=seed, weights_only=weights_only)
    assert sorted(p.name for p in Path("ckpt/seed_0").iterdir()) == ["checkpoint_window.json",  # the rates' record
                                                                    *(f"epoch_{e:04d}{suffix}" for e in (3, 4, 5, 6))]

    plan = plan_from(compose([*DATA_ARGS, "trajectory=files", f"trajectory.glob=ckpt/*/*{suffix}",
                               "model.hidden=[8]", "averaging=linear"]))
    assert plan.window == [6, 5, 4, 3]
    outcome = compute_outcome(plan, data)
    assert outcome.trajectory.seeds.tolist() == [0, 1] and outcome.trajectory.epochs.tolist() == [6, 5, 4, 3]
    reader = build_model(MODELS["mlp"].bind({"hidden": [8]}), data)
    for s in (0, 1):
        members = []
        for epoch in (6, 5, 4, 3):  # member 1 is the latest epoch
            path = f"ckpt/seed_{s}/epoch_{epoch:04d}{suffix}"
            if weights_only:
                reader.load_weights(path)
                members.append(reader.get_weights())
            else:
                members.append(keras.saving.load_model(path).get_weights())
        for split in ("val", "test"):
            x, y = data.split(split)
            for n in range(1, 5):
                single = probabilities(members[n - 1], x)
                assert outcome.scores[f"{split}_single_acc"][s, n - 1] == np.mean(single.argmax(axis=1) == y)
                weights = np.arange(n, 0, -1) / (n * (n + 1) / 2)  # linear: the latest weighs the most
                averaged = [np.tensordot(weights, np.stack([m[i] for m in members[:n]]), axes=1) for i in range(4)]
                mixed = probabilities(averaged, x)
                assert outcome.scores[f"{split}_average_acc"][s, n - 1] == np.mean(mixed.argmax(axis=1) == y)
                loss = -np.mean(np.log(mixed[np.arange(len(y)), y]))
                assert outcome.scores[f"{split}_average_loss"][s, n - 1] == pytest.approx(loss, rel=1e-4)
        # The learning curves: each file alone, at its epoch, oldest first.
        x, y = data.split("test")
        expected = [np.mean(probabilities(m, x).argmax(axis=1) == y) for m in members[::-1]]
        assert outcome.trajectory.history["test_acc"][s].tolist() == expected
    assert outcome.trajectory.curve_epochs.tolist() == [3, 4, 5, 6]


def save(model: keras.Model, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    model.save(path) if path.endswith(".keras") else model.save_weights(path)


@pytest.mark.parametrize(("files", "glob", "message"), [
    ([], "ckpt/*.keras", "it matches no file"),
    (["ckpt/weights.03-0.81.keras", "ckpt/weights.04-0.79.keras"], "ckpt/*.keras", "the epoch of 'weights.03-0.81' "
                                                                                   "is ambiguous"),
    (["ckpt/final.keras"], "ckpt/*", "the epoch of 'final' is ambiguous"),
    (["ckpt/run2-epoch_3.keras", "ckpt/epoch_03.keras"], "ckpt/*.keras", "are both epoch 3"),
    (["ckpt/epoch_1.keras", "ckpt/epoch_2.weights.h5"], "ckpt/*", "files of one kind"),
    (["ckpt/epoch_1.keras", "ckpt/notes.txt"], "ckpt/*", "it matches ckpt/notes.txt"),
    (["a/epoch_1.keras", "a/epoch_2.keras", "b/epoch_1.keras"], "*/*.keras", "hold different epochs ([1, 2] and [1])"),
    (["ckpt/epoch_1.keras", "ckpt/epoch_2.keras:wide"], "ckpt/*.keras", "are models of different architectures"),
])
def test_bad_checkpoint_files_fail_in_one_line_when_planned(tmp_path, monkeypatch, files, glob, message):
    monkeypatch.chdir(tmp_path)
    for name in files:
        path, _, wide = name.partition(":")
        if path.endswith(".txt"):
            Path(path).write_text("notes")
        else:
            save(keras_mlp(9 if wide else 8), path)
    with pytest.raises(ConfigError) as error:
        plan_from(compose(["trajectory=files", f"trajectory.glob={glob}"]))
    text = str(error.value)
    assert text.startswith(f"trajectory.glob='{glob}' is not allowed: ") and message in text and "\n" not in text


def test_settings_of_training_are_refused_with_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save(keras_mlp(), "ckpt/epoch_1.keras")
    for setting in ("seeds=3", "swa_start=2", "ema_decays=[0.9]"):
        with pytest.raises(ConfigError, match=f"^{setting.split('=')[0]}=.* trajectory=files scores saved"):
            plan_from(compose(["trajectory=files", "trajectory.glob=ckpt/*.keras", setting]))


def test_the_files_content_and_names_are_part_of_the_identity(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keras.utils.set_random_seed(0)
    model = keras_mlp()
    for epoch in (1, 2):
        save(model, f"ckpt/epoch_{epoch}.keras")
    args = ["trajectory=files", "trajectory.glob=ckpt/*.keras"]
    first = job_identity(plan_from(compose(args))).key
    assert job_identity(plan_from(compose(args))).key == first
    model.set_weights([w + 1 for w in model.get_weights()])
    save(model, "ckpt/epoch_2.keras")  # the same name, other weights
    edited = job_identity(plan_from(compose(args))).key
    assert edited != first
    Path("ckpt/epoch_2.keras").rename("ckpt/epoch_3.keras")  # the same bytes, another epoch
    assert job_identity(plan_from(compose(args))).key not in (first, edited)


@pytest.mark.slow
def test_the_cli_scores_checkpoint_files_from_a_fresh_folder(cli):
    data = plan_from(compose()).load_data()
    fit(keras_mlp(), data, cli.workdir / "ckpt", epochs=5, size=3, seed=0)
    missing = cli.run("trajectory=files", "trajectory.glob=nowhere/*.keras")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr and cli.runs() == []
    assert "trajectory.glob='nowhere/*.keras' is not allowed: it matches no file" in missing.stderr

    result = cli.run("trajectory=files", "trajectory.glob=ckpt/*.keras")
    assert result.returncode == 0, result.stderr
    assert [n for n, _, _ in table(result.stdout)] == [1, 2, 3]
    (run,) = cli.runs()
    assert run.info.status == "FINISHED" and run.data.tags["polyexp.trajectory"] == "files"
    assert "test_average_ece" in run.data.metrics and "test_single_ece" in run.data.metrics
    folder = Path(run.data.tags["polyexp.output_dir"])
    assert {p.name for p in (folder / "plots").iterdir()} >= {"learning_curves.png", "accuracy_vs_n.png"}
    with open(folder / "history.csv") as history:
        assert [line.split(",")[1] for line in history.read().splitlines()[1:]] == ["3", "4", "5"]
