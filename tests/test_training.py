"""The compiled training loop: fit's semantics, seeds trained together, the window, in-training averages."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from polyexp.core.data import DATASETS
from polyexp.core.errors import TrainingDiverged
from polyexp.core.models import MODELS
from polyexp.core.optimizers import OPTIMIZERS
from polyexp.core.training import train

DATA = DATASETS["blobs"].bind({"n_val": 200})()


def build_model():
    return MODELS["mlp"].bind({})(DATA.num_features, DATA.num_classes)


def sgd(learning_rate: float = 0.01):
    return lambda: OPTIMIZERS["sgd"].bind({"learning_rate": learning_rate})()


def run(epochs: int, window: list[int], seeds=(0,), batch_size: int = 32, **kwargs):
    return train(build_model, sgd(), DATA, seeds=list(seeds), epochs=epochs, batch_size=batch_size,
                 window=window, **kwargs)


def order(seed: int, epoch: int) -> np.ndarray:
    """The loop's row order for (seed, epoch), as its docstring states it."""
    return tf.argsort(tf.random.stateless_uniform([len(DATA.x_train)], seed=[seed, epoch])).numpy()


def keras_reference(seed: int, epochs: int, batch_size: int = 32, ema_decay: float | None = None):
    """Keras itself in the loop's row order: ``fit(epochs=1)`` per epoch; optionally each step's weights."""
    keras.utils.set_random_seed(seed)
    model = build_model()
    model.compile(optimizer=sgd()(), loss="sparse_categorical_crossentropy")
    steps, per_epoch = [], []
    for epoch in range(1, epochs + 1):
        rows = order(seed, epoch)
        if ema_decay is None:
            model.fit(DATA.x_train[rows], DATA.y_train[rows], batch_size=batch_size, epochs=1, shuffle=False,
                      verbose=0)
        else:  # one step at a time, to see the weights after each
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                model.train_on_batch(DATA.x_train[batch], DATA.y_train[batch])
                steps.append(model.get_weights())
        per_epoch.append(model.get_weights())
    return model, steps, per_epoch


def test_matches_keras_fit_one_epoch_at_a_time_in_the_same_order():
    trajectory = run(3, [3], seeds=[5])
    reference, _, _ = keras_reference(5, 3)
    for ours, theirs in zip(trajectory.seed_weights(0, 0), reference.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_keeps_the_window_checkpoints_and_the_learning_curves():
    trajectory = run(12, [12, 10, 8])
    assert trajectory.epochs.tolist() == [12, 10, 8] and trajectory.seeds.tolist() == [0]
    assert [w.shape for w in trajectory.checkpoints] == [(1, 3, 2, 25), (1, 3, 25), (1, 3, 25, 3), (1, 3, 3)]
    assert set(trajectory.history) == {f"{s}_{m}" for s in ("train", "val", "test") for m in ("acc", "loss")}
    assert all(v.shape == (1, 12) for v in trajectory.history.values())

    shorter = run(8, [8])
    for kept, weight in zip(trajectory.checkpoints, shorter.checkpoints, strict=True):
        np.testing.assert_array_equal(kept[0, 2], weight[0, 0])  # member 3 is epoch 8
    for key, values in shorter.history.items():
        np.testing.assert_array_equal(values, trajectory.history[key][:, :8])


def test_accuracies_are_exact_fractions_of_each_split():
    trajectory = run(5, [5])
    for split in ("train", "val", "test"):
        correct = trajectory.history[f"{split}_acc"] * len(DATA.split(split)[1])
        np.testing.assert_allclose(correct, np.round(correct), atol=1e-9)


def test_same_seed_same_numbers_other_seed_other_numbers():
    first, second, other = run(40, [40, 39]), run(40, [40, 39]), run(40, [40, 39], seeds=[1])
    for a, b in zip(first.checkpoints, second.checkpoints, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.history["test_loss"], second.history["test_loss"])
    assert not np.array_equal(first.checkpoints[0], other.checkpoints[0])


def test_a_seed_keeps_its_own_initialisation_in_any_group():
    def standing_still(seeds):  # a zero learning rate: the weights after epoch 1 are the initial ones
        return train(build_model, lambda: keras.optimizers.SGD(0.0), DATA, seeds=seeds, epochs=1, batch_size=32,
                     window=[1])

    alone, group = standing_still([1]), standing_still([0, 1, 2])
    for solo, together in zip(alone.checkpoints, group.checkpoints, strict=True):
        np.testing.assert_array_equal(together[1], solo[0])
    kernels = group.checkpoints[0]
    assert not np.array_equal(kernels[0], kernels[1])  # and the seeds differ from each other


def test_a_seed_in_a_group_trains_as_it_does_alone():
    """Its own rows in its own order: the vectorised kernels differ from the single-seed ones only in
    rounding (docs/studies.md, "Seeds trained together")."""
    alone = run(30, [30, 1], seeds=[1])
    group = run(30, [30, 1], seeds=[0, 1, 2], curve_every=1)  # curves every epoch, as one seed scores them
    other_group = run(30, [30, 1], seeds=[1, 2])
    for solo, together, other in zip(alone.checkpoints, group.checkpoints, other_group.checkpoints, strict=True):
        np.testing.assert_allclose(together[1], solo[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(other[0], solo[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(group.history["test_loss"][1], alone.history["test_loss"][0], rtol=1e-4)
    np.testing.assert_array_equal(group.history["train_acc"][1], alone.history["train_acc"][0])


def test_progress_reports_every_call_up_to_the_last_epoch():
    seen: list[int] = []
    run(300, [300], seeds=[0, 1], on_progress=seen.append)
    assert seen == sorted(seen) and seen[0] == 1 and seen[-1] == 300


def test_divergence_stops_training_with_the_epoch_and_seed():
    with pytest.raises(TrainingDiverged) as error:
        train(build_model, sgd(1e4), DATA, seeds=[0], epochs=200, batch_size=32, window=[200])
    epoch = error.value.epoch
    assert 1 <= epoch < 200 and error.value.seed == 0
    assert f"training diverged at epoch {epoch} (seed 0)" in str(error.value)
    assert error.value.history["train_loss"].shape == (1, epoch)
    assert not np.isfinite(error.value.history["train_loss"][0, -1])


def test_ema_follows_keras_ema_momentum_on_every_step():
    """EMA against a numpy average of the weights Keras reaches after each step (train_on_batch)."""
    decay = 0.9
    trajectory = run(3, [3], seeds=[2], ema_decays=[decay])
    _, steps, _ = keras_reference(2, 3, ema_decay=decay)
    expected = [w.astype(np.float64) for w in steps[0]]  # the first step: the weights themselves
    for weights in steps[1:]:
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, weights, strict=True)]
    for ours, theirs in zip(trajectory.averages["ema_0.9"], expected, strict=True):
        np.testing.assert_allclose(ours[0], theirs, rtol=1e-4, atol=1e-5)


def test_swa_is_the_equal_mean_of_the_weights_after_each_epoch_from_the_start_epoch():
    trajectory = run(6, [6], seeds=[3], swa_start=4)
    _, _, per_epoch = keras_reference(3, 6)
    expected = [np.mean([weights[i] for weights in per_epoch[3:]], axis=0) for i in range(len(per_epoch[0]))]
    for ours, theirs in zip(trajectory.averages["swa"], expected, strict=True):
        np.testing.assert_allclose(ours[0], theirs, rtol=1e-4, atol=1e-5)


def test_batchnorm_and_dropout_models_train_in_a_group():
    def build():
        return MODELS["mlp"].bind({"batchnorm": True, "dropout": 0.2})(DATA.num_features, DATA.num_classes)

    trajectory = train(build, sgd(), DATA, seeds=[0, 1], epochs=5, batch_size=32, window=[5, 4])
    names = trajectory.names
    assert any("moving_mean" in n for n in names)
    mean = trajectory.checkpoints[next(i for i, n in enumerate(names) if "moving_mean" in n)]
    assert mean.shape[:2] == (2, 2) and not np.allclose(mean, 0)  # the statistics moved, per seed
    assert not np.allclose(mean[0], mean[1])


def test_the_curves_are_scored_every_nth_epoch_and_at_the_window_and_the_ends():
    trajectory = run(35, [35, 33], seeds=[0, 1], curve_every=10)
    assert trajectory.curve_epochs.tolist() == [1, 10, 20, 30, 33, 35]
    assert trajectory.history["val_acc"].shape == (2, 6)
    # a group scores every 10th epoch by default
    assert run(35, [35, 33], seeds=[0, 1]).curve_epochs.tolist() == trajectory.curve_epochs.tolist()
    every = run(35, [35, 33], seeds=[0, 1], curve_every=1)
    np.testing.assert_array_equal(every.history["test_acc"][:, [0, 9, 19, 29, 32, 34]], trajectory.history["test_acc"])


def test_divergence_is_caught_at_its_epoch_between_scored_epochs():
    with pytest.raises(TrainingDiverged) as error:
        train(build_model, sgd(1e4), DATA, seeds=[0, 1], epochs=200, batch_size=32, window=[200], curve_every=100)
    assert error.value.epoch < 100 and error.value.history["train_loss"].shape == (2, 1)  # epoch 1 only


def test_a_model_that_cannot_be_vectorised_trains_its_seeds_one_after_another(monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise ValueError("no converter for this op")

    monkeypatch.setattr(tf, "vectorized_map", refuse)  # as TensorFlow fails on a model it cannot vectorise
    group = run(20, [20, 19], seeds=[3, 4])
    assert "cannot be trained as one vectorised group (ValueError: no converter for this op)" in caplog.text
    for s, seed in enumerate([3, 4]):  # one after another, each exactly as alone
        alone = run(20, [20, 19], seeds=[seed])
        for together, solo in zip(group.checkpoints, alone.checkpoints, strict=True):
            np.testing.assert_array_equal(together[s], solo[0])


def test_an_optimizer_that_clips_by_norm_trains_its_seeds_one_after_another(caplog):
    """A norm over the stacked gradients would let one seed's gradient scale another's steps."""
    caplog.set_level(logging.INFO, logger="polyexp.core.training")
    clipped = lambda: keras.optimizers.SGD(0.01, momentum=0.9, global_clipnorm=0.1)  # noqa: E731
    group = train(build_model, clipped, DATA, seeds=[3, 4], epochs=20, batch_size=32, window=[20])
    assert "clips gradients by norm" in caplog.text
    for s, seed in enumerate([3, 4]):
        alone = train(build_model, clipped, DATA, seeds=[seed], epochs=20, batch_size=32, window=[20])
        for together, solo in zip(group.checkpoints, alone.checkpoints, strict=True):
            np.testing.assert_array_equal(together[s], solo[0])
