"""Schedule-free AdamW: polyexp's loop against the paper's update re-derived in NumPy on the same batches,
and its averaged sequence x scored beside the checkpoints (which hold the interpolation y)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import compose

from polyexp.core.data import DATASETS
from polyexp.core.models import MODELS
from polyexp.core.optimizers import OPTIMIZERS
from polyexp.core.outcome import compute_outcome
from polyexp.core.schedule_free import AVERAGE, evaluation_point
from polyexp.core.settings import plan_from
from polyexp.core.training import train

DATA = DATASETS["blobs"].bind({"n_val": 200})()
RATE, BETA_1, BETA_2, EPSILON = 0.01, 0.9, 0.999, 1e-8


def build_model():
    return MODELS["mlp"].bind({})(DATA.num_features, DATA.num_classes)


def gradient(model: keras.Model, weights: list[np.ndarray], rows: np.ndarray) -> list[np.ndarray]:
    """The mean cross-entropy's gradient at ``weights`` on the training ``rows`` (TensorFlow for the
    derivative alone; the update is NumPy's)."""
    model.set_weights(weights)
    with tf.GradientTape() as tape:
        probabilities = model(DATA.x_train[rows], training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(DATA.y_train[rows], probabilities))
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def reference_update(seed: int, epochs: int, warmup: int = 0, decay: float = 0.0, keras_variant: bool = False
                     ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Defazio et al. 2024, Algorithm 1 with Adam's second moment, as their reference ``AdamWScheduleFree``
    steps it (decay added to the z step at y; c = rate_t^2 / sum of rate_i^2), in the loop's row order:
    the final (y, x). ``keras_variant``: Keras 3.15's update instead (x recovered with the new z, c = 1/t,
    decay applied to y before the step)."""
    keras.utils.set_random_seed(seed)
    model = build_model()
    z = [w.astype(np.float64) for w in model.get_weights()]
    x = [w.copy() for w in z]
    y = [w.copy() for w in z]
    v = [np.zeros_like(w) for w in z]
    t, weights = 0, 0.0
    for epoch in range(1, epochs + 1):
        order = tf.argsort(tf.random.stateless_uniform([len(DATA.x_train)], seed=[seed, epoch])).numpy()
        for start in range(0, len(order), 32):
            t += 1
            warm = min(t / warmup, 1.0) if warmup else 1.0
            rate = RATE * warm
            if keras_variant and decay:
                y = [yi - decay * RATE * yi for yi in y]  # Keras' decay: on y, before the step, at the unwarmed rate
            g = gradient(model, [yi.astype(np.float32) for yi in y], order[start : start + 32])
            v = [BETA_2 * vi + (1 - BETA_2) * gi**2 for vi, gi in zip(v, g, strict=True)]
            z_old = z
            z = [zi - rate * (gi / (np.sqrt(vi / (1 - BETA_2**t)) + EPSILON) + (0 if keras_variant else decay) * yi)
                 for zi, gi, vi, yi in zip(z, g, v, y, strict=True)]
            seen = z if keras_variant else z_old
            x = [(yi - (1 - BETA_1) * si) / BETA_1 for yi, si in zip(y, seen, strict=True)]
            weights += warm**2
            c = 1 / t if keras_variant else warm**2 / weights
            x = [(1 - c) * xi + c * zi for xi, zi in zip(x, z, strict=True)]
            y = [(1 - BETA_1) * zi + BETA_1 * xi for zi, xi in zip(z, x, strict=True)]
    return y, x


def assert_trained_as(trajectory, s: int, y: list[np.ndarray], x: list[np.ndarray]) -> None:
    for i, (ours_y, ours_x) in enumerate(zip(trajectory.checkpoints, trajectory.averages[AVERAGE], strict=True)):
        np.testing.assert_allclose(ours_y[s, 0], y[i], rtol=1e-4, atol=5e-5)  # the checkpoint: y
        np.testing.assert_allclose(ours_x[s], x[i], rtol=1e-4, atol=5e-5)  # the in-training average: x


def sf_train(seeds: list[int], **fields):
    optimizer = OPTIMIZERS["schedule_free_adamw"].bind({"learning_rate": RATE, **fields})
    return train(build_model, optimizer, DATA, seeds=seeds, epochs=3, batch_size=32, window=[3])


@pytest.mark.parametrize("seeds", [[0], [0, 1]])  # alone, and as a vectorised group
def test_the_loop_steps_and_averages_as_the_paper_and_scores_x(seeds):
    trajectory = sf_train(seeds)
    for s, seed in enumerate(seeds):
        y, x = reference_update(seed, epochs=3)
        assert_trained_as(trajectory, s, y, x)
        assert not np.allclose(trajectory.checkpoints[0][s, 0], trajectory.averages[AVERAGE][0][s])


def test_warm_up_and_weight_decay_follow_the_reference():
    y, x = reference_update(0, epochs=3, warmup=5, decay=0.05)
    assert_trained_as(sf_train([0], warmup_steps=5, weight_decay=0.05), 0, y, x)


@pytest.mark.parametrize(("warmup", "decay"), [(0, 0.0), (5, 0.05)])
def test_keras_own_update_is_kept_as_update_keras_and_differs_from_the_paper(warmup, decay):
    """Pins Keras' ScheduleFreeAdamW as polyexp reads it (its z in ``_momentums``, and its update)."""
    trajectory = sf_train([0], update="keras", warmup_steps=warmup, weight_decay=decay)
    y, x = reference_update(0, epochs=3, warmup=warmup, decay=decay, keras_variant=True)
    assert_trained_as(trajectory, 0, y, x)
    paper_y, _ = reference_update(0, epochs=3, warmup=warmup, decay=decay)
    assert max(np.abs(a - b).max() for a, b in zip(y, paper_y, strict=True)) > 1e-3


def test_x_is_recovered_from_y_and_z():
    rng = np.random.default_rng(0)
    x, z = rng.normal(size=5), rng.normal(size=5)
    np.testing.assert_allclose(evaluation_point((1 - 0.7) * z + 0.7 * x, z, 0.7), x, rtol=1e-12)


def test_a_job_scores_x_beside_the_checkpoints_and_other_optimizers_have_no_x():
    plan = plan_from(compose(["optimizer=schedule_free_adamw", "epochs=20", "seeds=2"]))
    outcome = compute_outcome(plan, plan.load_data())
    assert outcome.scores[f"test_{AVERAGE}_acc"].shape == (2,)
    assert 0.3 < outcome.scores[f"test_{AVERAGE}_acc"].mean() <= 1
    plain = plan_from(compose(["optimizer=adamw", "epochs=20", "seeds=2"]))
    assert f"test_{AVERAGE}_acc" not in compute_outcome(plain, plain.load_data()).scores
