"""Figures: the data, the learning curves, accuracy against n (as in the seed), weight profiles.

Each function returns a matplotlib ``Figure`` that is not attached to pyplot, so nothing leaks
between the jobs of a sweep::

    figure = accuracy_figure(scores.single_acc, scores.ensemble_acc, "exp alpha=2")
    figure.savefig("accuracy_vs_n.png")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure, SubplotParams

from polyexp.data import Dataset

# Fixed margins: matplotlib's automatic layouts double the time a figure takes to draw.
_MARGINS = {"left": 0.12, "right": 0.97, "bottom": 0.12, "top": 0.91}


def data_figure(data: Dataset, title: str) -> Figure:
    """Training rows (filled) and test rows (hollow), coloured by class; PCA for > 2 features."""
    x_train, x_test, axis_names = _plane(data)
    figure = Figure(figsize=(6, 5), subplotpars=_margins())
    ax = figure.subplots()
    colors = _class_colors(data.num_classes)
    for c in range(data.num_classes):
        test = x_test[data.y_test == c]
        train = x_train[data.y_train == c]
        ax.scatter(test[:, 0], test[:, 1], s=10, facecolors="none", edgecolors=colors[c], alpha=0.5)
        ax.scatter(train[:, 0], train[:, 1], s=28, color=colors[c], edgecolors="black", label=f"class {c}")
    ax.set(title=f"{title}: {len(x_train)} training rows (filled), {len(x_test)} test rows",
           xlabel=axis_names[0], ylabel=axis_names[1])
    ax.legend(loc="best", fontsize="small")
    return figure


def learning_curves_figure(history: Mapping[str, np.ndarray], window: Sequence[int]) -> Figure:
    """Accuracy and loss on both splits per epoch, the window shaded; then a close-up of the window."""
    figure = Figure(figsize=(14, 4), subplotpars=_margins(left=0.05, right=0.98, wspace=0.25, top=0.88))
    axes = figure.subplots(1, 3)
    epochs = np.arange(1, len(history["train_acc"]) + 1)
    for ax, metric in zip(axes[:2], ("acc", "loss"), strict=True):
        ax.plot(epochs, history[f"train_{metric}"], label="train")
        ax.plot(epochs, history[f"test_{metric}"], label="test")
        ax.axvspan(min(window) - 0.5, max(window) + 0.5, color="grey", alpha=0.2, label="window")
        ax.set(xlabel="epoch", ylabel="accuracy" if metric == "acc" else "cross-entropy")
        ax.legend(fontsize="small")
    span = max(window) - min(window) + 1
    shown = epochs[epochs > max(window) - max(3 * span, 30)]
    members = np.asarray(window)
    close_up = axes[2]
    close_up.plot(shown, history["test_acc"][shown - 1], color="C1", label="test")
    close_up.plot(members, history["test_acc"][members - 1], "o", color="C1", label="kept checkpoints")
    close_up.axvspan(min(window) - 0.5, max(window) + 0.5, color="grey", alpha=0.2)
    close_up.set(xlabel="epoch", ylabel="test accuracy", title="the end of training")
    close_up.legend(fontsize="small")
    figure.suptitle("Learning curves")
    return figure


def accuracy_figure(single: np.ndarray, ensemble: np.ndarray, title: str) -> Figure:
    """The seed's plot: each n-th latest checkpoint alone (dots) and the average of the n latest (line)."""
    n = np.arange(1, len(single) + 1)
    figure = Figure(figsize=(6, 4), subplotpars=_margins())
    ax = figure.subplots()
    ax.plot(n, single, marker="o", linestyle="None", label="single: the n-th latest checkpoint")
    ax.plot(n, ensemble, marker="o", label="ensemble: average of the n latest")
    ax.set(title=title, xlabel="n", ylabel="test accuracy")
    ax.set_xticks(_ticks(len(n)))
    ax.legend(fontsize="small")
    return figure


def weights_figure(matrix: np.ndarray, title: str) -> Figure:
    """The normalised weight of each member (1 = latest) in the average of the n latest, per n."""
    k = len(matrix)
    figure = Figure(figsize=(6, 4), subplotpars=_margins())
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


def sweep_figure(lines: Mapping[str, Sequence[float]], singles: Mapping[str, Sequence[float]]) -> Figure:
    """Ensemble accuracy against n, one line per job; each distinct trajectory's singles as dots."""
    figure = Figure(figsize=(7, 4.5), subplotpars=_margins(left=0.1))
    ax = figure.subplots()
    longest = 1
    for label, ensemble in lines.items():
        ax.plot(np.arange(1, len(ensemble) + 1), ensemble, marker="o", markersize=3, label=label)
        longest = max(longest, len(ensemble))
    for label, single in singles.items():
        ax.plot(np.arange(1, len(single) + 1), single, marker=".", linestyle="None", color="grey",
                alpha=0.6, label=label)
    ax.set(title="Ensemble accuracy per job", xlabel="n (checkpoints averaged)", ylabel="test accuracy")
    ax.set_xticks(_ticks(longest))
    ax.legend(fontsize="x-small")
    return figure


def _plane(data: Dataset) -> tuple[np.ndarray, np.ndarray, tuple[str, str]]:
    if data.num_features == 1:
        zeros = np.zeros((len(data.x_train), 1)), np.zeros((len(data.x_test), 1))
        return np.hstack([data.x_train, zeros[0]]), np.hstack([data.x_test, zeros[1]]), ("x1", "")
    if data.num_features == 2:
        return data.x_train, data.x_test, ("x1", "x2")
    mean = data.x_train.mean(axis=0)
    _, _, components = np.linalg.svd(data.x_train - mean, full_matrices=False)
    project = components[:2].T
    return (data.x_train - mean) @ project, (data.x_test - mean) @ project, ("PC 1", "PC 2")


def _ticks(k: int) -> list[int]:
    step = max(1, int(np.ceil(k / 12)))
    return list(range(1, k + 1, step))


def _margins(**changes: float) -> SubplotParams:
    return SubplotParams(**{**_MARGINS, **changes})


def _class_colors(count: int) -> list:
    return [colormaps["tab10" if count <= 10 else "tab20"](i % 20) for i in range(count)]


def _sequential_colors(count: int) -> list:
    return [colormaps["viridis"](i / max(1, count - 1)) for i in range(count)]
