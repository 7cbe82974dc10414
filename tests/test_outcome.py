"""A job's computation, composed as users compose it, every number re-derived by hand (no MLflow, no files)."""

import dataclasses

import numpy as np
import pytest
from conftest import compose
from test_calibration import ece_by_loop
from test_data import colour_images

from polyexp.core.errors import PluginError
from polyexp.core.models import build_model
from polyexp.core.outcome import compute_outcome, summarise
from polyexp.core.settings import plan_from
from polyexp.core.statistics import mean_ci

T_975 = {2: 4.302653, 3: 3.182446, 5: 2.570582}  # Student's t, two-sided 95%, by degrees of freedom (tables)


def forward(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """The default MLP's class probabilities, in numpy."""
    w1, b1, w2, b2 = (w.astype(np.float64) for w in weights)
    logits = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def accuracy(probabilities: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(probabilities.argmax(axis=1) == y))


@pytest.fixture(scope="module")
def three_seeds():
    plan = plan_from(compose(["seeds=3", "epochs=40", "window.size=4", "averaging=linear", "data.n_val=300",
                               "ema_decays=[0.9]", "swa_start=30"]))
    data = plan.load_data()
    return plan, data, compute_outcome(plan, data)


def test_every_score_is_a_numpy_forward_pass_of_the_checkpoints(three_seeds):
    _, data, outcome = three_seeds
    trajectory, scores = outcome.trajectory, outcome.scores
    assert trajectory.seeds.tolist() == [0, 1, 2]
    linear = np.array([4, 3, 2, 1], dtype=float)
    for s in range(3):
        members = [trajectory.seed_weights(s, m) for m in range(4)]
        for split in ("val", "test"):
            x, y = data.split(split)
            singles = [forward(w, x) for w in members]

            def check(key: str, probabilities: np.ndarray, index: tuple, y: np.ndarray = y) -> None:
                assert scores[f"{key}_acc"][index] == accuracy(probabilities, y)
                assert abs(scores[f"{key}_ece"][index] - ece_by_loop(y, probabilities)) < 1e-5

            for n in range(1, 5):
                check(f"{split}_single", singles[n - 1], (s, n - 1))
                weights = linear[4 - n:] / linear[4 - n:].sum()
                np.testing.assert_allclose(outcome.weights[s, n - 1, :n], weights)
                averaged = [np.tensordot(weights, np.stack([m[i] for m in members[:n]]), axes=1)
                            for i in range(len(members[0]))]
                check(f"{split}_average", forward(averaged, x), (s, n - 1))
                check(f"{split}_ensemble", np.tensordot(weights, np.stack(singles[:n]), axes=1), (s, n - 1))
            for name in ("ema_0.9", "swa"):
                check(f"{split}_{name}", forward([w[s] for w in trajectory.averages[name]], x), (s,))
    assert np.array_equal(scores["test_single_acc"][:, 0], scores["test_average_acc"][:, 0])  # n = 1: the same


def test_the_summary_selects_on_validation_and_reports_test_with_t_intervals(three_seeds):
    _, _, outcome = three_seeds
    scores, summary, per_n = outcome.scores, outcome.summary, outcome.per_n
    val_means = scores["val_average_acc"].mean(axis=0)
    n = int(np.argmax(val_means))
    assert summary["selected_n"] == n + 1
    test = scores["test_average_acc"][:, n]
    half = T_975[2] * test.std(ddof=1) / np.sqrt(3)
    assert summary["selected_test_acc"] == pytest.approx(test.mean())
    assert summary["selected_test_acc_ci_low"] == pytest.approx(test.mean() - half)
    assert summary["selected_test_acc_ci_high"] == pytest.approx(test.mean() + half)
    gains = scores["test_average_acc"] - scores["test_single_acc"][:, :1]
    np.testing.assert_allclose(per_n["test_gain_vs_last"].mean, gains.mean(axis=0))
    np.testing.assert_allclose(per_n["test_gain_vs_last"].high - per_n["test_gain_vs_last"].mean,
                               T_975[2] * gains.std(axis=0, ddof=1) / np.sqrt(3))
    assert summary["selected_gain_vs_last"] == pytest.approx(gains[:, n].mean())
    assert summary["test_swa_acc"] == pytest.approx(scores["test_swa_acc"].mean())
    assert not any(key.startswith("best") for key in summary)


def test_the_gain_is_against_the_last_checkpoint_scored_as_the_averages_are(three_seeds):
    """With BatchNorm the average of n = 1 (statistics recomputed) is not the single last checkpoint."""
    _, _, outcome = three_seeds
    scores = {key: values.copy() for key, values in outcome.scores.items()}
    scores["test_average_acc"][:, 0] += 0.05  # what recomputing the statistics alone might add
    per_n, summary = summarise(scores)
    gains = scores["test_average_acc"] - scores["test_average_acc"][:, :1]
    np.testing.assert_allclose(per_n["test_gain_vs_last"].mean, gains.mean(axis=0))
    assert per_n["test_gain_vs_last"].mean[0] == 0
    assert summary["selected_gain_vs_last"] == pytest.approx(gains[:, summary["selected_n"] - 1].mean())
    ensemble = scores["test_ensemble_acc"][:, summary["ensemble_selected_n"] - 1] - scores["test_single_acc"][:, 0]
    assert summary["ensemble_selected_gain_vs_last"] == pytest.approx(ensemble.mean())


def test_no_selection_reads_test_rows(three_seeds):
    """The same trajectory scored with other test labels selects the same n and the same weights."""
    plan, data, outcome = three_seeds
    rng = np.random.default_rng(0)
    shuffled = dataclasses.replace(data, y_test=rng.permutation(data.y_test))
    again = compute_outcome(plan, shuffled, fetch=lambda train: (outcome.trajectory, True))
    assert again.summary["selected_n"] == outcome.summary["selected_n"]
    np.testing.assert_array_equal(again.weights, outcome.weights)
    assert again.summary["selected_val_acc"] == outcome.summary["selected_val_acc"]
    assert again.summary["selected_test_acc"] != outcome.summary["selected_test_acc"]


def test_the_greedy_soup_selects_on_validation_only():
    plan = plan_from(compose(["averaging=greedy_soup", "seeds=2", "epochs=40", "window.size=6", "data.n_val=200"]))
    data = plan.load_data()
    outcome = compute_outcome(plan, data)
    def val_accuracy(members, chosen):  # the equal average of the chosen members, on validation
        averaged = [np.mean([members[i][w] for i in chosen], axis=0) for w in range(len(members[0]))]
        return accuracy(forward(averaged, data.x_val), data.y_val)

    for s in range(2):
        members = [outcome.trajectory.seed_weights(s, m) for m in range(6)]
        for n in range(1, 7):  # the greedy soup by hand, in numpy
            ranked = sorted(range(n), key=lambda i: -val_accuracy(members, [i]))
            soup, best = [ranked[0]], val_accuracy(members, [ranked[0]])
            for candidate in ranked[1:]:
                if (score := val_accuracy(members, [*soup, candidate])) >= best:
                    soup, best = [*soup, candidate], score
            expected = np.zeros(n)
            expected[soup] = 1 / len(soup)
            np.testing.assert_allclose(outcome.weights[s, n - 1, :n], expected)

    for split in ("x_test", "y_test"):  # test rows of another data set: the same soups
        other = dataclasses.replace(data, **{split: np.flip(getattr(data, split), axis=0)})
        again = compute_outcome(plan, other, fetch=lambda train: (outcome.trajectory, True))
        np.testing.assert_array_equal(again.weights, outcome.weights)


def batchnorm_forward(weights: list[np.ndarray], x: np.ndarray, x_train: np.ndarray) -> np.ndarray:
    """``mlp batchnorm=true``'s probabilities in numpy, its BatchNorm statistics recomputed on ``x_train``."""
    kernel, gamma, beta, _, _, w2, b2 = (w.astype(np.float64) for w in weights)
    mean, variance = (x_train @ kernel).mean(axis=0), (x_train @ kernel).var(axis=0)
    hidden = np.maximum((x @ kernel - mean) / np.sqrt(variance + 1e-3) * gamma + beta, 0)
    logits = hidden @ w2 + b2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_the_greedy_soup_with_batchnorm_ranks_members_as_it_scores_soups():
    """Each member ranks by its accuracy with statistics recomputed, the way every soup is scored."""
    plan = plan_from(compose(["averaging=greedy_soup", "model.batchnorm=true", "epochs=20", "window.size=6",
                               "optimizer.learning_rate=0.1", "data.n_val=300"]))
    data = plan.load_data()
    outcome = compute_outcome(plan, data)
    members = [outcome.trajectory.seed_weights(0, m) for m in range(6)]

    def val_accuracy(chosen):  # the equal average of the chosen members, statistics recomputed
        averaged = [np.mean([members[i][w] for i in chosen], axis=0) for w in range(len(members[0]))]
        return accuracy(batchnorm_forward(averaged, data.x_val, data.x_train), data.y_val)

    alone = [val_accuracy([i]) for i in range(6)]
    stored = outcome.scores["val_single_acc"][0]
    assert any(np.argmax(stored[:n]) != np.argmax(alone[:n]) for n in range(1, 7))  # stored statistics rank otherwise
    for n in range(1, 7):
        ranked = sorted(range(n), key=lambda i: -alone[i])
        soup, best = [ranked[0]], alone[ranked[0]]
        for candidate in ranked[1:]:
            if (score := val_accuracy([*soup, candidate])) >= best:
                soup, best = [*soup, candidate], score
        expected = np.zeros(n)
        expected[soup] = 1 / len(soup)
        np.testing.assert_allclose(outcome.weights[0, n - 1, :n], expected)


def test_an_averaging_that_misbehaves_fails_before_training(monkeypatch):
    monkeypatch.setenv("POLYEXP_PLUGINS", "misbehaving_plugins")
    plan = plan_from(compose(["averaging=negative", "epochs=5", "window.size=2"]))
    trained = []
    with pytest.raises(PluginError, match="averaging plugin 'negative' returned a negative weight"):
        compute_outcome(plan, plan.load_data(), fetch=lambda train: trained.append(1))
    assert trained == []


def test_one_seed_has_no_interval():
    plan = plan_from(compose(["epochs=20", "window.size=3"]))
    outcome = compute_outcome(plan, plan.load_data())
    assert outcome.scores["test_single_acc"].shape == (1, 3)
    assert np.isnan(outcome.summary["selected_test_acc_ci_low"])
    assert np.all(np.isnan(outcome.per_n["test_average_acc"].low))


def test_mean_ci_is_students_t_interval():
    values = np.array([[0.80, 0.1], [0.82, 0.3], [0.81, 0.2], [0.79, 0.2], [0.83, 0.2], [0.80, 0.1]])
    estimate = mean_ci(values)
    half = T_975[5] * values.std(axis=0, ddof=1) / np.sqrt(6)
    np.testing.assert_allclose(estimate.mean, values.mean(axis=0))
    np.testing.assert_allclose(estimate.high - estimate.mean, half, rtol=1e-6)
    np.testing.assert_allclose(estimate.mean - estimate.low, half, rtol=1e-6)


def test_a_cnn_takes_colour_images_and_scores_them_as_keras_predicts(tmp_path):
    x, y = colour_images()
    np.savez(tmp_path / "images.npz", x=x, y=y)
    plan = plan_from(compose(["data=npz", f"data.path={tmp_path / 'images.npz'}", "model=cnn", "model.filters=[4]",
                               "epochs=4", "window.size=2", "seeds=2"]))
    data = plan.load_data()
    outcome = compute_outcome(plan, data)
    model = build_model(plan.model, data)
    assert model.input_shape == (None, 8, 6, 3)
    for s in range(2):
        for member in range(2):
            model.set_weights(outcome.trajectory.seed_weights(s, member))
            predicted = model.predict(data.x_test, verbose=0)
            assert outcome.scores["test_single_acc"][s, member] == accuracy(predicted, data.y_test)
