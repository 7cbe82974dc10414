"""Batched scoring against a plain numpy forward pass; BatchNorm statistics against a direct computation."""

import keras
import numpy as np
import pytest

from polyexp.core.data import DATASETS
from polyexp.core.evaluation import Scorer, accuracy_and_loss, batchnorm_layers, ensemble_probabilities, merge_moments
from polyexp.core.models import MODELS

DATA = DATASETS["blobs"].bind({"n_val": 100})()


def log_probabilities(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    w1, b1, w2, b2 = (w.astype(np.float64) for w in weights)
    logits = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def random_sets(model: keras.Model, count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(count, *w.shape)).astype(np.float32) for w in model.weights]


def test_scores_and_probabilities_equal_a_numpy_forward_pass():
    model = MODELS["mlp"].bind({})(2, 3)
    sets = random_sets(model, 7)
    scorer = Scorer(model, DATA.x_train)
    accuracy, loss = scorer(sets, DATA.x_test, DATA.y_test)
    probabilities = scorer.probabilities(sets, DATA.x_test)
    assert probabilities.shape == (7, len(DATA.x_test), 3)
    for m in range(7):
        log_p = log_probabilities([s[m] for s in sets], DATA.x_test)
        assert accuracy[m] == np.mean(log_p.argmax(axis=1) == DATA.y_test)
        np.testing.assert_allclose(loss[m], -np.mean(log_p[np.arange(len(DATA.y_test)), DATA.y_test]), rtol=1e-4)
        np.testing.assert_allclose(probabilities[m], np.exp(log_p), rtol=1e-4, atol=1e-6)


def test_one_scorer_serves_any_number_of_sets():
    model = MODELS["mlp"].bind({})(2, 3)
    scorer = Scorer(model, DATA.x_train)
    for count in (1, 3, 40):
        accuracy, loss = scorer(random_sets(model, count), DATA.x_val, DATA.y_val)
        assert accuracy.shape == loss.shape == (count,)


def test_output_ensembles_average_the_members_probabilities_with_the_weights():
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.ones(3), size=(2, 4, len(DATA.y_test))).astype(np.float32)  # (S, K, rows, C)
    matrix = np.stack([np.tril(rng.random((4, 4))) for _ in range(2)])
    matrix /= matrix.sum(axis=2, keepdims=True)
    accuracy, loss = accuracy_and_loss(DATA.y_test, ensemble_probabilities(probabilities, matrix))
    for s in range(2):
        for n in range(4):
            mixed = np.tensordot(matrix[s, n], probabilities[s].astype(np.float64), axes=1)
            assert accuracy[s, n] == np.mean(mixed.argmax(axis=1) == DATA.y_test)
            picked = np.clip(mixed[np.arange(len(DATA.y_test)), DATA.y_test], 1e-7, 1 - 1e-7)
            np.testing.assert_allclose(loss[s, n], -np.mean(np.log(picked)), rtol=1e-4)


def test_recomputed_batchnorm_statistics_equal_a_direct_computation():
    """Two BatchNorm layers: the second's inputs depend on the first's new statistics, as in update_bn."""
    model = MODELS["mlp"].bind({"hidden": [6, 5], "batchnorm": True})(2, 3)
    sets = random_sets(model, 1, seed=3)
    variance_index = [i for i, w in enumerate(model.weights) if "moving_variance" in w.path]
    for i in variance_index:
        sets[i] = np.abs(sets[i])  # variances must be positive
    scorer = Scorer(model, DATA.x_train)
    held = scorer.holding([s[0] for s in scorer.recomputed(sets)])
    weights = {w.path: s[0].astype(np.float64) for w, s in zip(model.weights, sets, strict=True)}
    first, second = batchnorm_layers(model)

    def direct(layer, x):  # the layer's input statistics, then its output with them (inference mode)
        mean, variance = x.mean(axis=0), x.var(axis=0)
        gamma, beta = weights[layer.gamma.path], weights[layer.beta.path]
        return mean, variance, gamma * (x - mean) / np.sqrt(variance + layer.epsilon) + beta

    kernels = [w for w in model.weights if w.path.endswith("kernel")]
    x = DATA.x_train.astype(np.float64) @ weights[kernels[0].path]
    mean_1, variance_1, normalised = direct(first, x)
    x = np.maximum(normalised, 0) @ weights[kernels[1].path]
    mean_2, variance_2, _ = direct(second, x)
    for layer, mean, variance in ((first, mean_1, variance_1), (second, mean_2, variance_2)):
        np.testing.assert_allclose(held.get_layer(layer.name).moving_mean.numpy(), mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(held.get_layer(layer.name).moving_variance.numpy(), variance, rtol=1e-4)


def test_without_recomputing_the_averaged_statistics_stay():
    model = MODELS["mlp"].bind({"batchnorm": True})(2, 3)
    sets = random_sets(model, 1, seed=4)
    scorer = Scorer(model, DATA.x_train, recompute_bn=False)
    held = scorer.holding([s[0] for s in scorer.recomputed(sets)])
    for weight, values in zip(held.weights, sets, strict=True):
        np.testing.assert_array_equal(weight.numpy(), values[0])


def test_batches_of_rows_give_the_scores_of_one_pass_and_report_progress():
    """Any batch size (one row, a batch that does not divide the rows, more than all rows): the same
    accuracy, the loss and probabilities to float32 rounding; progress counts sets per split."""
    model = MODELS["mlp"].bind({})(2, 3)
    sets = random_sets(model, 5, seed=5)
    whole = Scorer(model, DATA.x_train, batch_size=len(DATA.x_test))
    accuracy, loss = whole(sets, DATA.x_test, DATA.y_test)
    probabilities = whole.probabilities(sets, DATA.x_test)
    for batch_size in (1, 37, 10_000):
        seen: list[float] = []
        batched = Scorer(model, DATA.x_train, batch_size=batch_size,
                         on_progress=lambda done, _, seen=seen: seen.append(done))
        batched_accuracy, batched_loss = batched(sets, DATA.x_test, DATA.y_test)
        np.testing.assert_array_equal(batched_accuracy, accuracy)
        np.testing.assert_allclose(batched_loss, loss, rtol=1e-5)
        np.testing.assert_allclose(batched.probabilities(sets, DATA.x_test), probabilities, rtol=1e-5, atol=1e-7)
        assert len(seen) == 2 * -(-len(DATA.x_test) // batch_size) and seen[-1] == pytest.approx(10)
        assert seen == sorted(seen)


def test_batchnorm_statistics_merged_over_batches_equal_one_pass_over_all_rows():
    """Two BatchNorm layers on images (a channel axis): batches of 7 rows give one pass's statistics."""
    from polyexp.core.data import make_dataset

    rng = np.random.default_rng(6)
    images = rng.normal(2.0, 3.0, size=(50, 6, 6, 2)).astype(np.float32)  # a mean far from 0: a cancellation test
    labels = np.arange(50) % 3
    data = make_dataset((images, labels), (images[:5], labels[:5]), (images[:5], labels[:5]))
    model = MODELS["cnn"].bind({"filters": [4, 3]})(72, 3, input_shape=(6, 6, 2))
    sets = random_sets(model, 3, seed=7)
    for i, w in enumerate(model.weights):
        if "moving_variance" in w.path:
            sets[i] = np.abs(sets[i])
    one_pass = Scorer(model, data.x_train, batch_size=50).recomputed(sets)
    batched = Scorer(model, data.x_train, batch_size=7).recomputed(sets)
    for w, ours, theirs, given in zip(model.weights, batched, one_pass, sets, strict=True):
        if "moving_" in w.path:
            assert not np.allclose(ours, given)
            np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(ours, given)


def test_merged_moments_equal_numpy_over_all_rows():
    rng = np.random.default_rng(8)
    x = rng.normal(1e3, 1.0, size=(101, 4))
    count, mean, m2 = 0, np.zeros(4), np.zeros(4)
    for part in np.array_split(x, 9):
        count, mean, m2 = merge_moments(count, mean, m2, len(part), part.mean(axis=0), part.var(axis=0))
    assert count == 101
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(m2 / count, x.var(axis=0), rtol=1e-9)
