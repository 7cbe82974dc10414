"""The compiled training loop: fit's semantics, the window kept exactly, determinism, divergence."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from polyexp.data import DATASETS
from polyexp.errors import TrainingDiverged
from polyexp.models import MODELS
from polyexp.optimizers import OPTIMIZERS
from polyexp.training import train

DATA = DATASETS["blobs"].bind({})()


def fresh(seed: int = 0, learning_rate: float = 0.01):
    keras.utils.set_random_seed(seed)
    model = MODELS["mlp"].bind({})(DATA.num_features, DATA.num_classes)
    return model, OPTIMIZERS["sgd"].bind({"learning_rate": learning_rate})()


def run(epochs: int, window: list[int], seed: int = 0, batch_size: int = 32):
    model, optimizer = fresh(seed)
    trajectory = train(model, optimizer, DATA, epochs=epochs, batch_size=batch_size, window=window, seed=seed)
    return model, trajectory


def test_matches_keras_fit_one_epoch_at_a_time_in_the_same_order():
    epochs, seed = 3, 5
    model, _ = run(epochs, [epochs], seed=seed, batch_size=32)

    reference, optimizer = fresh(seed)
    reference.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    for epoch in range(1, epochs + 1):  # the seed's loop: fit(epochs=1), rows in the loop's order
        order = tf.argsort(tf.random.stateless_uniform([len(DATA.x_train)], seed=[seed, epoch])).numpy()
        reference.fit(DATA.x_train[order], DATA.y_train[order], batch_size=32, epochs=1, shuffle=False, verbose=0)
    for ours, theirs in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_keeps_the_window_checkpoints_and_the_learning_curves():
    _, trajectory = run(12, [12, 10, 8])
    assert trajectory.epochs.tolist() == [12, 10, 8]
    assert [w.shape for w in trajectory.checkpoints] == [(3, 2, 25), (3, 25), (3, 25, 3), (3, 3)]
    assert set(trajectory.history) == {"train_acc", "train_loss", "test_acc", "test_loss"}
    assert all(len(v) == 12 for v in trajectory.history.values())

    model_after_8, shorter = run(8, [8])
    for kept, weight in zip(trajectory.checkpoints, model_after_8.get_weights(), strict=True):
        np.testing.assert_array_equal(kept[2], weight)  # member 3 is epoch 8
    for key, values in shorter.history.items():
        np.testing.assert_array_equal(values, trajectory.history[key][:8])


def test_accuracies_are_exact_fractions_of_the_split():
    _, trajectory = run(5, [5])
    correct = trajectory.history["test_acc"] * len(DATA.x_test)
    np.testing.assert_allclose(correct, np.round(correct), atol=1e-9)


def test_same_seed_same_numbers_other_seed_other_numbers():
    _, first = run(40, list(range(40, 30, -1)))
    _, second = run(40, list(range(40, 30, -1)))
    _, other = run(40, list(range(40, 30, -1)), seed=1)
    for a, b in zip(first.checkpoints, second.checkpoints, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.history["test_loss"], second.history["test_loss"])
    assert not np.array_equal(first.checkpoints[0], other.checkpoints[0])


def test_progress_reports_every_call_up_to_the_last_epoch():
    seen: list[int] = []
    model, optimizer = fresh()
    train(model, optimizer, DATA, epochs=300, batch_size=32, window=[300], seed=0, on_progress=seen.append)
    assert seen == sorted(seen) and seen[0] == 1 and seen[-1] == 300


def test_divergence_stops_training_with_the_epoch():
    model, _ = fresh()
    optimizer = OPTIMIZERS["sgd"].bind({"learning_rate": 1e4})()
    with pytest.raises(TrainingDiverged) as error:
        train(model, optimizer, DATA, epochs=200, batch_size=32, window=[200], seed=0)
    epoch = error.value.epoch
    assert 1 <= epoch < 200
    assert f"training diverged at epoch {epoch}" in str(error.value)
    assert len(error.value.history["train_loss"]) == epoch
    assert not np.isfinite(error.value.history["train_loss"][-1])
