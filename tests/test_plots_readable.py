"""What the figures draw, checked on their artists: bands that stay visible, points where curves were
scored, labels that cover no data, and a sweep figure laid out for MLflow's artifact view (~500 px)."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from polyexp.core.statistics import Estimate
from polyexp.run import plots

K = 10


def estimate(values: np.ndarray) -> Estimate:
    """Mean and t interval over seeds (axis 0), computed here with numpy alone."""
    seeds = len(values)
    mean = values.mean(axis=0)
    if seeds < 2:
        return Estimate(mean, np.full_like(mean, np.nan), np.full_like(mean, np.nan))
    half = {10: 2.262157}[seeds] * values.std(axis=0, ddof=1) / np.sqrt(seeds)
    return Estimate(mean, mean - half, mean + half)


def accuracy_figure(seeds: int) -> Figure:
    rng = np.random.default_rng(0)
    average = 0.805 + 0.0015 * np.arange(K) + rng.normal(0, 0.008, (seeds, K))
    single = 0.8 + rng.normal(0, 0.01, (seeds, K))
    per_n = {"test_single_acc": estimate(single), "test_average_acc": estimate(average),
             "test_ensemble_acc": estimate(average + rng.normal(0, 0.003, (seeds, K))),
             "val_average_acc": estimate(average + 0.01), "test_gain_vs_last": estimate(average - single[:, :1])}
    return plots.accuracy_figure(per_n, {"selected_n": 6.0}, "equal", test_rows=1000, seeds=seeds)


def bands(ax) -> dict[str, PolyCollection]:
    return {c.get_label(): c for c in ax.collections if isinstance(c, PolyCollection)}


def test_the_average_band_is_shaded_and_the_ensemble_band_hatched_so_both_stay_visible():
    accuracy = accuracy_figure(10).axes[0]
    found = bands(accuracy)
    average, ensemble = found["average: 95% interval"], found["ensemble: 95% interval"]
    assert not average.get_hatch() and average.get_facecolor()[0][3] > 0  # shaded
    assert ensemble.get_hatch() == "////" and all(face[3] == 0 for face in ensemble.get_facecolor())  # see-through
    assert tuple(ensemble.get_edgecolor()[0][:3]) == pytest.approx(to_rgba("C2")[:3])
    legend = [t.get_text() for t in accuracy.get_legend().get_texts()]
    assert "average: 95% interval" in legend and "ensemble: 95% interval" in legend


def test_one_seed_draws_no_band_and_its_gain_panel_is_not_paired_over_seeds():
    figure = accuracy_figure(1)
    accuracy, gain = figure.axes[:2]
    assert bands(accuracy) == {} and bands(gain) == {}
    assert gain.get_title() == "gain over the last checkpoint, one seed"
    assert accuracy_figure(10).axes[1].get_title() == "gain over the last checkpoint, paired over seeds"


def test_the_selected_n_is_a_line_named_in_the_legend_not_a_label_over_the_points():
    accuracy = accuracy_figure(10).axes[0]
    assert len(accuracy.texts) == 0  # no annotation drawn inside the panel, where points are
    (line,) = [line for line in accuracy.lines if line.get_label() == "selected on validation: n = 6"]
    assert list(line.get_xdata()) == [6, 6]
    assert "selected on validation: n = 6" in [t.get_text() for t in accuracy.get_legend().get_texts()]


def test_the_end_of_training_panel_draws_points_and_joins_only_consecutive_scored_epochs():
    epochs = [*range(10, 491, 10), *range(491, 501)]  # a group of seeds: every 10th epoch, then the window
    rng = np.random.default_rng(1)
    history = {f"{split}_{metric}": rng.uniform(0.5, 0.9, (10, len(epochs)))
               for split in ("train", "val", "test") for metric in ("acc", "loss")}
    close_up = plots.learning_curves_figure(history, epochs, list(range(500, 490, -1))).axes[2]
    (points,) = [c for c in close_up.containers if c.get_label() == "test, at each scored epoch"]
    marks = points.lines[0]
    assert marks.get_linestyle() == "None" and marks.get_marker() == "."
    assert {480, 490, 491, 500} <= set(marks.get_xdata().tolist())
    mean = history["test_acc"].mean(axis=0)
    np.testing.assert_allclose(marks.get_ydata()[list(marks.get_xdata()).index(480)], mean[epochs.index(480)])
    for line in close_up.lines:
        if line.get_linestyle() == "None":
            continue
        x = np.asarray(line.get_xdata(), dtype=float)
        joined = np.isfinite(x[:-1]) & np.isfinite(x[1:])
        assert np.all(np.diff(x)[joined] <= 1), f"{line.get_label()} joins unscored epochs"


def curves(epochs: list[int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    return {f"{split}_{metric}": rng.uniform(0.5, 0.9, (1, len(epochs)))
            for split in ("train", "val", "test") for metric in ("acc", "loss")}


def rate_axes(figure: Figure) -> tuple:
    """The whole-training rate panel and the close-up's rate axis (the twin labelled "learning rate")."""
    (twin,) = [ax for ax in figure.axes if ax.get_ylabel() == "learning rate"]
    return figure.axes[3], twin


@pytest.mark.parametrize(("epochs", "per_epoch"), [(37, 7), (40, 312), (30, 1)])
def test_rates_of_every_step_group_by_epoch_for_any_epoch_count(epochs, per_epoch):
    steps = np.arange(1, epochs * per_epoch + 1)
    values = 0.1 * (1 + np.cos(np.pi * (steps - 1) / len(steps))) / 2
    window = list(range(epochs, epochs - 5, -1))
    figure = plots.learning_curves_figure(curves(list(range(1, epochs + 1))), list(range(1, epochs + 1)), window,
                                          plots.LearningRates(steps / per_epoch, values, steps))
    whole, twin = rate_axes(figure)
    label = "mean of each epoch" if per_epoch > 1 else "rate of each epoch's last step"  # one step: no range
    (mean,) = [line for line in whole.lines if line.get_label() == label]
    assert mean.get_xdata().tolist() == list(range(1, epochs + 1))
    np.testing.assert_allclose(mean.get_ydata(), values.reshape(epochs, per_epoch).mean(axis=1))
    (members,) = [line for line in twin.lines if line.get_label() == "members' rate (epoch ends)"]
    assert members.get_xdata().tolist() == window
    np.testing.assert_allclose(members.get_ydata(), values[np.asarray(window) * per_epoch - 1])


def test_rates_known_at_epoch_ends_draw_one_point_per_epoch_and_no_line_across_a_gap():
    recorded = np.array([1, 2, 3, 7, 8, 9, 10])  # a run resumed at epoch 7 without its earlier record
    values = np.array([0.1, 0.1, 0.05, 0.05, 0.02, 0.02, 0.01])
    figure = plots.learning_curves_figure(curves([7, 8, 9, 10]), [7, 8, 9, 10], [10, 9],
                                          plots.LearningRates(recorded.astype(float), values, recorded * 5, "recorded"))
    whole, twin = rate_axes(figure)
    assert whole.get_title() == "recorded" and not whole.collections  # one rate per epoch: no range band
    (line,) = whole.lines
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3, np.nan, 7, 8, 9, 10])
    np.testing.assert_array_equal(line.get_ydata(), [0.1, 0.1, 0.05, np.nan, 0.05, 0.02, 0.02, 0.01])
    (members,) = [line for line in twin.lines if line.get_label().startswith("members' rate")]
    assert members.get_xdata().tolist() == [10, 9] and members.get_ydata().tolist() == [0.01, 0.02]


def test_an_unknown_rate_is_said_in_words_not_drawn():
    figure = plots.learning_curves_figure(curves([9, 10]), [9, 10], [10, 9], "learning rate: unknown (none recorded)")
    assert not figure.axes[3].axison and figure.axes[3].get_title() == "learning rate: unknown (none recorded)"
    assert all(ax.get_ylabel() != "learning rate" for ax in figure.axes)


def sweep_jobs(count: int) -> list[dict]:
    return [{"name": f"exp alpha={i + 1} epochs=50", "selected_val_acc": 0.80 + 0.001 * i,
             "selected_test_acc": 0.79 + 0.002 * i, "selected_test_acc_ci_low": 0.785 + 0.002 * i,
             "selected_test_acc_ci_high": 0.795 + 0.002 * i, "test_average_acc": list(0.8 + 0.001 * np.arange(K))}
            for i in range(count)]


@pytest.mark.parametrize("count", [1, 6, 12])
def test_the_sweep_figure_fits_mlflow_s_artifact_view_with_no_empty_band(count):
    figure = plots.sweep_figure(sweep_jobs(count), test_rows=1000)
    renderer = FigureCanvasAgg(figure).get_renderer()
    width, height = figure.get_size_inches() * figure.dpi
    assert width <= 700 and height >= width / 2  # shown ~500 px wide: scaled by 0.7 or more, one column
    ranking, curves = figure.axes
    assert ranking.get_position().y0 > curves.get_position().y1  # stacked: the ranking above
    drawn = figure.get_tightbbox(renderer)  # inches
    margins = [drawn.x0, drawn.y0, figure.get_figwidth() - drawn.x1, figure.get_figheight() - drawn.y1]
    assert max(margins) < 0.35, margins  # nothing left blank along an edge
    assert min(margins) >= 0  # and nothing cut off
    texts = [ranking.xaxis.label, curves.title, curves.xaxis.label]
    for legend in (ranking.get_legend(), curves.get_legend()):
        box = legend.get_window_extent(renderer)
        assert not any(Bbox.intersection(box, ax.get_window_extent(renderer)) for ax in figure.axes)
        assert not any(Bbox.intersection(box, t.get_window_extent(renderer)) for t in texts if t.get_text())
    assert ranking.get_yticklabels()[0].get_text() == f"exp alpha={count} epochs=50"  # best first


def test_the_close_up_legend_covers_nothing_and_the_title_says_what_was_scored():
    epochs = [*range(10, 481, 10), *range(490, 501)]
    steps = np.arange(1, 500 * 4 + 1)
    figure = plots.learning_curves_figure(curves(epochs), epochs, list(range(500, 490, -1)),
                                          plots.LearningRates(steps / 4, np.full(len(steps), 0.01), steps))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    close_up = figure.axes[2]
    legend = close_up.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert sorted(labels) == ["kept checkpoints", "members' rate (epoch ends)", "test, at each scored epoch"]
    renderer = canvas.get_renderer()
    assert legend.get_window_extent(renderer).y1 < close_up.get_window_extent(renderer).y0  # below the axes
    assert figure.get_suptitle() == "Learning curves, scored after 59 of the 500 epochs"


def test_the_close_up_holds_every_interval_whole_and_the_members_rate_marks_above_the_points():
    """Ten seeds scored every 10th epoch outside the window: epoch 490's interval, the widest, is drawn
    whole, and the marks of the members' (constant) rate sit in a band above every point and interval."""
    epochs = [*range(10, 491, 10), *range(491, 501)]
    rng = np.random.default_rng(5)
    history = {f"{split}_{metric}": 0.8 + rng.normal(0, 0.01, (10, len(epochs)))
               for split in ("train", "val", "test") for metric in ("acc", "loss")}
    history["test_acc"][:, epochs.index(490)] += rng.normal(0, 0.03, 10)  # a wide interval at 490
    steps = np.arange(1, 500 * 4 + 1)
    figure = plots.learning_curves_figure(history, epochs, list(range(500, 490, -1)),
                                          plots.LearningRates(steps / 4, np.full(len(steps), 0.01), steps))
    FigureCanvasAgg(figure).draw()
    close_up, (_, twin) = figure.axes[2], rate_axes(figure)
    test = estimate(history["test_acc"])
    shown = np.asarray(epochs) >= 480
    low, high = close_up.get_ylim()
    assert low < test.low[shown].min() and test.high[shown].max() < high
    left, right = close_up.get_xlim()
    assert left < 480 and right > 500
    # the rate marks, mapped to the close-up's accuracy scale, lie above the highest interval
    mark = close_up.transData.inverted().transform(twin.transData.transform((495, 0.01)))[1]
    assert test.high[shown].max() < mark < high
