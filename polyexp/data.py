"""Data sets (``data=...``): scikit-learn's generators and the data sets it ships, split in two.

A data plugin takes no call arguments and returns a :class:`Dataset`; its keyword arguments are its
config. Labels are class ids ``0..C-1`` (the loss is categorical cross-entropy, as with one-hot
labels). The toy generators split by row order, as the seed does; the real data sets use a
stratified shuffle split and standardise the features on the training split. scikit-learn is
imported inside the plugins, so that checking a config does not wait for it::

    from polyexp.data import DATASETS

    data = DATASETS["blobs"].bind({"n_train": 100})()
    data.x_train.shape, data.x_test.shape, data.num_classes   # (100, 2), (1000, 2), 3
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from polyexp.errors import ConfigError, PluginError
from polyexp.registry import Ge, Gt, Lt, Registry

DATASETS = Registry("data")


@dataclass(frozen=True)
class Dataset:
    """Features (float32) and class ids (int32) of the training and the test split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])


def split_rows(x: np.ndarray, y: np.ndarray, n_train: int) -> Dataset:
    """The first ``n_train`` rows train, the rest test (the seed's split)."""
    if n_train >= len(x):
        raise ConfigError.field(
            "data.n_train", n_train, f"it must be below the number of rows ({len(x)}) so that test rows remain"
        )
    _require_all_classes(y, y[:n_train], "data.n_train", n_train)
    return _dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def split_stratified(
    x: np.ndarray, y: np.ndarray, train_fraction: float, split_seed: int, standardize: bool
) -> Dataset:
    """A stratified shuffle split, features standardised with the training split's statistics."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, train_size=train_fraction, stratify=y, random_state=split_seed
        )
    except ValueError as exc:
        raise ConfigError.field("data.train_fraction", train_fraction, str(exc)) from None
    if standardize:
        scaler = StandardScaler().fit(x_train)
        x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    return _dataset(x_train, y_train, x_test, y_test)


def check_dataset(data: object, label: str) -> Dataset:
    """Reject what a data plugin returned unless both splits are usable for training and scoring."""
    if not isinstance(data, Dataset):
        raise PluginError(f"{label} returned {type(data).__name__}; it must return a polyexp.data.Dataset")
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
            raise PluginError(f"{label}: x_{split} must be (rows, features) and y_{split} (rows,) of the same rows")
        if len(x) == 0:
            raise PluginError(f"{label} returned an empty {split} split")
        if not np.all(np.isfinite(x)):
            raise PluginError(f"{label} returned non-finite features in the {split} split")
    missing = sorted(set(range(data.num_classes)) - set(np.unique(data.y_train).tolist()))
    if missing:
        raise PluginError(f"{label}: the training split lacks class {missing[0]}")
    return data


@DATASETS.register
def blobs(
    *,
    n_samples: Annotated[int, Ge(2)] = 1100,
    centers: Annotated[int, Ge(2)] = 3,
    n_features: Annotated[int, Ge(1)] = 2,
    cluster_std: Annotated[float, Gt(0)] = 2.0,
    random_state: int = 2,
    n_train: Annotated[int, Ge(1)] = 100,
) -> Dataset:
    """Gaussian blobs; the defaults are the seed's (1100 rows, 3 classes, the first 100 train)."""
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        n_samples=n_samples, centers=centers, n_features=n_features,
        cluster_std=cluster_std, random_state=random_state,
    )
    return split_rows(x, y, n_train)


@DATASETS.register
def moons(
    *,
    n_samples: Annotated[int, Ge(2)] = 1100,
    noise: Annotated[float, Ge(0)] = 0.2,
    random_state: int = 2,
    n_train: Annotated[int, Ge(1)] = 100,
) -> Dataset:
    """Two interleaving half circles, 2 classes; the first n_train rows train."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=random_state)
    return split_rows(x, y, n_train)


@DATASETS.register
def circles(
    *,
    n_samples: Annotated[int, Ge(2)] = 1100,
    noise: Annotated[float, Ge(0)] = 0.1,
    factor: Annotated[float, Gt(0), Lt(1)] = 0.5,
    random_state: int = 2,
    n_train: Annotated[int, Ge(1)] = 100,
) -> Dataset:
    """A small circle inside a large one, 2 classes; the first n_train rows train."""
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=random_state)
    return split_rows(x, y, n_train)


def _register_shipped(name: str, summary: str) -> None:
    def load(
        *,
        train_fraction: Annotated[float, Gt(0), Lt(1)] = 0.5,
        split_seed: int = 0,
        standardize: bool = True,
    ) -> Dataset:
        from sklearn import datasets

        x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        return split_stratified(x, y, train_fraction, split_seed, standardize)

    load.__name__ = load.__qualname__ = name
    load.__doc__ = f"{summary}; a stratified split, standardised on the training rows."
    DATASETS.register(load)


_register_shipped("digits", "Handwritten digits, 8x8 pixels: 1797 rows, 64 features, 10 classes")
_register_shipped("wine", "Wine cultivars: 178 rows, 13 features, 3 classes")
_register_shipped("iris", "Iris flowers: 150 rows, 4 features, 3 classes")
_register_shipped("breast_cancer", "Breast cancer diagnosis: 569 rows, 30 features, 2 classes")


def _require_all_classes(y: np.ndarray, y_train: np.ndarray, key: str, value: object) -> None:
    missing = sorted(set(np.unique(y).tolist()) - set(np.unique(y_train).tolist()))
    if missing:
        raise ConfigError.field(key, value, f"the training rows then lack class {missing[0]}; use more rows")


def _dataset(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> Dataset:
    f, i = np.float32, np.int32
    return Dataset(x_train.astype(f), y_train.astype(i), x_test.astype(f), y_test.astype(i))

