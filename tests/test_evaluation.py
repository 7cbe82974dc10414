"""Batched scoring against a plain numpy forward pass of the same weights."""

import keras
import numpy as np

from polyexp.averaging import WEIGHTINGS, average, weight_matrix
from polyexp.data import DATASETS
from polyexp.evaluation import Scorer, score_window
from polyexp.models import MODELS
from polyexp.trajectory import Trajectory

DATA = DATASETS["blobs"].bind({})()


def log_probabilities(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    w1, b1, w2, b2 = (w.astype(np.float64) for w in weights)
    logits = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def forward(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    return np.exp(log_probabilities(weights, x))


def random_sets(model: keras.Model, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(size=(count, *w.shape)).astype(np.float32) for w in model.weights]


def test_scores_equal_a_numpy_forward_pass():
    model = MODELS["mlp"].bind({})(2, 3)
    sets = random_sets(model, 7)
    accuracy, loss = Scorer(model)(sets, DATA.x_test, DATA.y_test)
    for m in range(7):
        log_p = log_probabilities([s[m] for s in sets], DATA.x_test)
        expected_acc = np.mean(log_p.argmax(axis=1) == DATA.y_test)
        expected_loss = -np.mean(log_p[np.arange(len(DATA.y_test)), DATA.y_test])
        assert accuracy[m] == expected_acc
        np.testing.assert_allclose(loss[m], expected_loss, rtol=1e-4)


def test_one_scorer_serves_any_number_of_sets():
    model = MODELS["mlp"].bind({})(2, 3)
    scorer = Scorer(model)
    for count in (1, 3, 40):
        accuracy, loss = scorer(random_sets(model, count), DATA.x_test, DATA.y_test)
        assert accuracy.shape == loss.shape == (count,)


def test_window_scores_singles_then_weighted_averages():
    model = MODELS["mlp"].bind({})(2, 3)
    checkpoints = random_sets(model, 4)
    trajectory = Trajectory(np.array([4, 3, 2, 1]), [w.path for w in model.weights], checkpoints, {})
    matrix = weight_matrix(WEIGHTINGS["linear"].bind({}), 4)
    scores = score_window(Scorer(model), trajectory, matrix, DATA)
    for n in range(1, 5):
        single = forward([c[n - 1] for c in checkpoints], DATA.x_test)
        assert scores.single_acc[n - 1] == np.mean(single.argmax(axis=1) == DATA.y_test)
        averaged = forward(average(checkpoints, matrix[n - 1]), DATA.x_test)
        assert scores.ensemble_acc[n - 1] == np.mean(averaged.argmax(axis=1) == DATA.y_test)
