"""Figures: the data, the learning curves, accuracy against n (as in the seed), weight profiles, sweeps.

Means over seeds are drawn as lines, their 95% intervals as bands (with one seed, lines alone). The
accuracy axes say what one row of the split is worth, so a gap can be read in rows. Each function
returns a matplotlib ``Figure`` that is not attached to pyplot, so nothing leaks between the jobs of a
sweep::

    figure = accuracy_figure(outcome.per_n, outcome.summary, "exp alpha=2", test_rows=1000, seeds=10)
    figure.savefig("accuracy_vs_n.png")
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from polyexp.core.data import Dataset
from polyexp.core.statistics import Estimate, mean_ci

# Fixed margins: matplotlib's automatic layouts double the time a figure takes to draw.
_MARGINS = {"left": 0.12, "right": 0.97, "bottom": 0.12, "top": 0.9}
_METHODS = {  # per-n method -> (label, colour)
    "single": ("single: the n-th latest checkpoint", "C0"),
    "average": ("average: weights of the n latest averaged", "C1"),
    "ensemble": ("ensemble: predictions of the n latest averaged", "C2"),
}


@dataclass(frozen=True)
class LearningRates:
    """Learning rates known from a training run: ``values[i]`` is the rate of optimizer step ``steps[i]``
    (counted from 1), which ended ``at[i]`` epochs into training (step / steps per epoch; an epoch's last
    step ends at the epoch's number). Ascending in ``at``.

    A trained run knows every step's rate; checkpoint files know, at most, the rate of each epoch's
    last step (``at`` = the epochs)::

        steps = np.arange(1, 8)
        LearningRates(steps / 7, np.full(7, 0.05), steps)   # one epoch of 7 steps at 0.05
    """

    at: np.ndarray
    values: np.ndarray
    steps: np.ndarray
    title: str = "the learning-rate schedule"


def data_figure(data: Dataset, title: str) -> Figure:
    """Training rows (filled) and test rows (hollow), coloured by class; PCA for > 2 features. Of a large
    split, :data:`SHOWN_ROWS` evenly spaced rows are drawn (and fit the PCA): a picture, not a pass."""
    train, test = _shown(len(data.x_train)), _shown(len(data.x_test))
    x_train, x_test, axis_names = _plane(data.x_train[train], data.x_test[test])
    y_train, y_test = data.y_train[train], data.y_test[test]
    figure = _figure((6, 5))
    ax = figure.subplots()
    colors = _class_colors(data.num_classes)
    for c in range(data.num_classes):
        name = data.class_names[c] if data.class_names else f"class {c}"
        ax.scatter(x_test[y_test == c, 0], x_test[y_test == c, 1], s=10, facecolors="none", edgecolors=colors[c],
                   alpha=0.5)
        ax.scatter(x_train[y_train == c, 0], x_train[y_train == c, 1], s=28, color=colors[c], edgecolors="black",
                   label=name)
    ax.set(title=f"{title}: {_rows_text(len(data.x_train), len(x_train), 'training')} (filled), "
                 f"{_rows_text(len(data.x_test), len(x_test), 'test')} ({len(data.x_val)} validation rows not shown)",
           xlabel=axis_names[0], ylabel=axis_names[1])
    ax.title.set_fontsize("small")
    ax.legend(loc="best", fontsize="small")
    return figure


SHOWN_ROWS = 2000  # of a split, in the data figure


def _shown(rows: int) -> np.ndarray:
    return np.linspace(0, rows - 1, min(rows, SHOWN_ROWS)).round().astype(np.int64)


def _rows_text(rows: int, shown: int, split: str) -> str:
    return f"{rows} {split} rows" if shown == rows else f"{shown} of {rows} {split} rows"


def learning_curves_figure(
    history: Mapping[str, np.ndarray], curve_epochs: Sequence[int], window: Sequence[int],
    rates: LearningRates | str | None = None, steps: Sequence[int] | None = None,
) -> Figure:
    """Accuracy and loss on every split per scored epoch, the window shaded; a close-up of the window
    with the known learning ``rates`` and the members marked at their ``steps`` (for a window by steps)
    or epoch ends; then the learning rate over all training, per epoch. A string instead of ``rates``
    says why the rate is not drawn."""
    figure = _figure((19, 4.6), left=0.04, right=0.98, wspace=0.45, top=0.87, bottom=0.25)
    axes = figure.subplots(1, 4)
    epochs = np.asarray(curve_epochs)
    for ax, metric in zip(axes[:2], ("acc", "loss"), strict=True):
        for split, color in (("train", "C0"), ("val", "C2"), ("test", "C1")):
            _band(ax, epochs, mean_ci(history[f"{split}_{metric}"]), color, split)
        ax.axvspan(min(window) - 0.5, max(window) + 0.5, color="grey", alpha=0.2, label="window")
        ax.set(xlabel="epoch", ylabel="accuracy" if metric == "acc" else "cross-entropy")
        ax.legend(fontsize="small")
    span = max(window) - min(window) + 1
    shown = epochs > max(window) - max(3 * span, 30)
    test = mean_ci(history["test_acc"])
    close_up = axes[2]
    # A point (and interval) per scored epoch; a line joins consecutive epochs alone, never 480 to 490
    close_up.errorbar(epochs[shown], test.mean[shown], yerr=_error(test[shown]), fmt=".", color="C1", capsize=2,
                      label="test, at each scored epoch")
    at, (joined,) = _broken_at_gaps(epochs[shown], test.mean[shown])
    close_up.plot(at, joined, color="C1", linewidth=1)
    kept = np.isin(epochs, window)
    close_up.plot(epochs[kept], test.mean[kept], "o", color="C1", label="kept checkpoints")
    close_up.axvspan(min(window) - 0.5, max(window) + 0.5, color="grey", alpha=0.2)
    close_up.set(xlabel="epoch", ylabel="test accuracy", title="the end of training",
                 ylim=_room_above(test[shown]), xlim=(epochs[shown][0] - 1.5, max(window) + 1))
    rate_axis = _rate_panels(axes[3], close_up, rates, window, steps, epochs[shown][0] - 1)
    # One legend under the close-up, so that nothing covers its points or the members' rates
    handles, labels = close_up.get_legend_handles_labels()
    if rate_axis is not None:
        handles, labels = [a + b for a, b in zip((handles, labels), rate_axis.get_legend_handles_labels(), strict=True)]
    close_up.legend(handles, labels, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2)
    seeds = history["train_acc"].shape[0]
    every = "" if len(epochs) == epochs[-1] else f", scored after {len(epochs)} of the {epochs[-1]} epochs"
    figure.suptitle("Learning curves" + (f": mean of {seeds} seeds, 95% interval shaded" if seeds > 1 else "")
                    + every)
    return figure


def _room_above(estimate: Estimate) -> tuple[float, float]:
    """Y limits that hold every point and interval whole, with a band on top for the members' rate marks."""
    ends = np.concatenate([estimate.mean, estimate.low, estimate.high])
    low, high = float(np.nanmin(ends)), float(np.nanmax(ends))
    span = high - low or 0.01
    return low - 0.08 * span, high + 0.3 * span


def _rate_panels(
    whole: Axes, close_up: Axes, rates: LearningRates | str | None, window: Sequence[int],
    steps: Sequence[int] | None, shown_after: float,
) -> Axes | None:
    """The learning rate: over all training, each epoch's range and mean, or its one known rate
    (``whole``); over the close-up's epochs, every known rate on a second axis, with the members'
    rates marked at their steps or epoch ends; returns that second axis (None: no rate known)."""
    if not isinstance(rates, LearningRates) or not len(rates.values):
        whole.set_axis_off()
        whole.set_title(textwrap.fill(rates or "learning rate: unknown", 64), fontsize="small")
        return None
    epochs, low, mean, high, count = _per_epoch(rates.at, rates.values)
    x, (low, mean, high) = _broken_at_gaps(epochs, low, mean, high)
    if count.max() > 1:
        whole.fill_between(x, low, high, color="C4", alpha=0.3, label="range within each epoch")
        whole.plot(x, mean, color="C4", label="mean of each epoch")
    else:
        whole.plot(x, mean, color="C4", marker="." if len(epochs) <= 50 else None,
                   label="rate of each epoch's last step")
    whole.set(xlabel="epoch", ylim=(0, None))  # the close-up labels the rate
    whole.set_title(textwrap.fill(rates.title, 40))
    whole.legend(fontsize="small")

    shown = rates.at > shown_after
    rate_axis = close_up.twinx()
    rate_axis.plot(rates.at[shown], rates.values[shown], color="C4", linewidth=0.8, alpha=0.6)
    if steps is None:
        where, members = "epoch ends", _found(rates.at, np.asarray(window, dtype=float))
    else:
        where, members = f"steps {min(steps)}-{max(steps)}", _found(rates.steps, np.asarray(steps))
    rate_axis.plot(rates.at[members], rates.values[members], "|", color="black", markersize=10,
                   label=f"members' rate ({where})")
    top = float(np.max(rates.values[shown])) if shown.any() else float(np.max(rates.values))
    rate_axis.set(ylabel="learning rate", ylim=(0, 1.08 * top if top > 0 else None))  # the marks in the top band
    return rate_axis


def _per_epoch(at: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    """The epochs that ``values`` (ascending in ``at``) fall in, and per epoch their min, mean, max and count.

    A value at ``at`` belongs to epoch ``ceil(at)``: ``at`` = 2 is the last step of epoch 2.
    """
    epochs, first, count = np.unique(np.ceil(at).astype(np.int64), return_index=True, return_counts=True)
    mean = np.add.reduceat(values, first) / count
    return epochs, np.minimum.reduceat(values, first), mean, np.maximum.reduceat(values, first), count


def _found(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The indices of the ascending ``keys`` equal to each of ``wanted``, those not there left out."""
    index = np.clip(np.searchsorted(keys, wanted), 0, len(keys) - 1)
    return index[np.isclose(keys[index], wanted)]


def accuracy_figure(
    per_n: Mapping[str, Estimate], summary: Mapping[str, float], title: str, *, test_rows: int, seeds: int
) -> Figure:
    """The seed's plot, with uncertainty: test accuracy against n for each method; then the gain
    of the average over the last checkpoint.

    The in-training averages (EMA, SWA) are horizontal reference lines; the n selected on validation is marked.
    """
    figure = _figure((12, 5.5), left=0.07, right=0.98, wspace=0.22, top=0.87,
                     bottom=0.27)
    accuracy, gain = figure.subplots(1, 2)
    k = len(per_n["test_single_acc"].mean)
    n = np.arange(1, k + 1)
    for method, (label, color) in _METHODS.items():
        estimate = per_n[f"test_{method}_acc"]
        if method == "single":
            accuracy.errorbar(n, estimate.mean, yerr=_error(estimate), fmt="o", color=color, capsize=2, label=label)
        else:  # the two bands overlap: one shaded, one hatched, so that each stays visible
            _band(accuracy, n, estimate, color, label, marker="o" if method == "average" else "s",
                  hatch=method == "ensemble", band_label=f"{method}: 95% interval")
    accuracy.plot(n, per_n["val_average_acc"].mean, linestyle="--", color="C1", alpha=0.6,
                  label="average, on validation (selects n)")
    for i, key in enumerate(sorted(s for s in summary if s.startswith("test_") and s.endswith("_acc"))):
        name = key.removeprefix("test_").removesuffix("_acc")
        color = f"C{3 + i}"
        accuracy.axhline(summary[key], color=color, linestyle=":", label=f"{name} (in training)")
        if np.isfinite(summary[f"{key}_ci_low"]):
            accuracy.axhspan(summary[f"{key}_ci_low"], summary[f"{key}_ci_high"], color=color, alpha=0.1)
    selected = int(summary["selected_n"])
    accuracy.axvline(selected, color="grey", linewidth=0.8, label=f"selected on validation: n = {selected}")
    accuracy.set(xlabel="n (checkpoints, the latest first)", ylabel=f"test accuracy ({_row_worth(test_rows)})")
    accuracy.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2)

    _band(gain, n, per_n["test_gain_vs_last"], "C1", "average of the n latest - last checkpoint", marker="o")
    gain.axhline(0, color="black", linewidth=0.8)
    gain.set(xlabel="n", ylabel=f"test accuracy gain ({_row_worth(test_rows)})",
             title="gain over the last checkpoint" + (", paired over seeds" if seeds > 1 else ", one seed"))
    gain.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.14))
    for ax in (accuracy, gain):
        ax.set_xticks(_ticks(k))
    spread = f"mean of {seeds} seeds, 95% intervals" if seeds > 1 else "one seed: no uncertainty (set seeds=10)"
    figure.suptitle(f"{title}\n{spread}", fontsize="medium")
    return figure


def weights_figure(matrix: np.ndarray, title: str) -> Figure:
    """The normalised weight of each member (1 = latest) in the average of the n latest, per n."""
    k = len(matrix)
    figure = _figure((6, 4))
    ax = figure.subplots()
    colors = _sequential_colors(k)
    for n in range(1, k + 1):
        label = f"n = {n}" if n in (1, k) or k <= 10 else None
        ax.plot(np.arange(1, n + 1), matrix[n - 1, :n], marker="o" if k <= 30 else None,
                color=colors[n - 1], label=label)
    ax.set(title=f"Weight profile: {title}", xlabel="member (1 = latest checkpoint)", ylabel="normalised weight")
    ax.set_xticks(_ticks(k))
    ax.legend(fontsize="x-small", ncols=2)
    return figure


def sweep_figure(jobs: Sequence[Mapping], test_rows: int | None) -> Figure:
    """A sweep's jobs ranked by their validation score, each with its test accuracy and interval;
    below it, each job's average accuracy against n.

    One column 6.4 inches (640 px) wide, as MLflow's artifact view shows an image (about 500 px): the
    panels stacked, the ranking as tall as its jobs need, each legend under its panel, no empty band.

    ``jobs``: dicts with ``name``, ``selected_val_acc``, ``selected_test_acc`` (+ ``_ci_low`` /
    ``_ci_high``) and ``test_average_acc`` (the mean per n).
    """
    ranked = sorted(jobs, key=lambda j: -j["selected_val_acc"])
    # heights in inches: title, ranking, its axis + legend + the next title, curves, their axis + legend
    legend_rows = int(np.ceil(len(ranked) / 2))
    parts = (0.35, 0.28 * len(ranked) + 0.4, 1.2, 2.4, 0.55 + 0.17 * legend_rows)
    height = sum(parts)
    name_width = max(len(str(j["name"])) for j in ranked)
    figure = _figure((6.4, height), left=min(0.5, 0.08 + 0.0105 * name_width), right=0.97,
                     top=1 - parts[0] / height, bottom=parts[4] / height, hspace=parts[2] / ((parts[1] + parts[3]) / 2))
    ranking, curves = figure.subplots(2, 1, height_ratios=[parts[1], parts[3]])
    y = np.arange(len(ranked))[::-1]
    test = Estimate(*(np.array([j[f"selected_test_acc{s}"] for j in ranked], dtype=float)
                      for s in ("", "_ci_low", "_ci_high")))
    ranking.errorbar(test.mean, y, xerr=_error(test), fmt="o", color="C1", capsize=3,
                     label="test accuracy, selected n (95% interval)")
    ranking.plot([j["selected_val_acc"] for j in ranked], y, "D", color="C2", label="validation score (ranks)")
    ranking.set_yticks(y, [j["name"] for j in ranked], fontsize="small")
    ranking.set_ylim(-0.6, len(ranked) - 0.4)
    row = f" ({_row_worth(test_rows)})" if test_rows else ""
    ranking.set(xlabel=f"accuracy{row}")
    ranking.set_title("jobs ranked on validation, best first", fontsize="medium")
    ranking.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.42 / parts[1]), ncols=2)
    longest = 1
    for job in ranked:
        values = job.get("test_average_acc") or []
        curves.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=job["name"])
        longest = max(longest, len(values))
    curves.set(xlabel="n", ylabel="test accuracy")
    curves.set_title("average of the n latest: test accuracy (mean over seeds)", fontsize="medium")
    curves.set_xticks(_ticks(longest))
    curves.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.42 / parts[3]), ncols=2)
    return figure


def _band(
    ax: Axes, x: np.ndarray, estimate: Estimate, color: str, label: str, marker: str | None = None, *,
    hatch: bool = False, band_label: str | None = None,
) -> None:
    """The mean as a line, its interval as a band: shaded, or hatched and outlined (to show through another)."""
    ax.plot(x, estimate.mean, color=color, label=label, marker=marker, markersize=3)
    if not np.all(np.isfinite(estimate.low)):
        return
    if hatch:
        ax.fill_between(x, estimate.low, estimate.high, facecolor="none", edgecolor=color, hatch="////",
                        linewidth=0.8, linestyle="--", label=band_label)
    else:
        ax.fill_between(x, estimate.low, estimate.high, color=color, alpha=0.2, linewidth=0, label=band_label)


def _broken_at_gaps(x: np.ndarray, *ys: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """``x`` and ``ys`` with a NaN between values whose ``x`` are not consecutive integers (no line across).

    ``_broken_at_gaps(np.array([480, 490, 491]), y)`` gives ``[480, nan, 490, 491]`` and ``[y0, nan, y1, y2]``.
    """
    gaps = np.flatnonzero(np.diff(x) > 1) + 1
    return np.insert(x.astype(float), gaps, np.nan), [np.insert(y.astype(float), gaps, np.nan) for y in ys]


def _error(estimate: Estimate) -> np.ndarray | None:
    if not np.all(np.isfinite(estimate.low)):
        return None
    return np.vstack([estimate.mean - estimate.low, estimate.high - estimate.mean])


def _row_worth(rows: int | None) -> str:
    return f"one row = {100 / rows:.2g} pp" if rows else ""


def _plane(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[str, str]]:
    x_train, x_test = (x.reshape(len(x), -1) for x in (x_train, x_test))  # images: rows of pixels
    if x_train.shape[1] == 1:
        return np.hstack([x_train, 0 * x_train]), np.hstack([x_test, 0 * x_test]), ("x1", "")
    if x_train.shape[1] == 2:
        return x_train, x_test, ("x1", "x2")
    mean = x_train.mean(axis=0)
    _, _, components = np.linalg.svd(x_train - mean, full_matrices=False)
    project = components[:2].T
    return (x_train - mean) @ project, (x_test - mean) @ project, ("PC 1", "PC 2")


def _ticks(k: int) -> list[int]:
    step = max(1, int(np.ceil(k / 12)))
    return list(range(1, k + 1, step))


def _figure(size: tuple[float, float], **margins: float) -> Figure:
    """A figure not attached to pyplot, with fixed margins."""
    figure = Figure(figsize=size)
    figure.subplots_adjust(**{**_MARGINS, **margins})
    return figure


def _class_colors(count: int) -> list:
    return [colormaps["tab10" if count <= 10 else "tab20"](i % 20) for i in range(count)]


def _sequential_colors(count: int) -> list:
    return [colormaps["viridis"](i / max(1, count - 1)) for i in range(count)]
