"""Data sets (``data=...``): training, validation and test rows.

A data plugin takes no call arguments and returns a :class:`Dataset`; its keyword arguments are its
config. Labels are class ids ``0..C-1`` (the loss is categorical cross-entropy, as with one-hot
labels). The validation rows serve every choice a job makes (the best n, a selecting averaging, a
sweep's best job); the test rows only report the choice.

- The toy generators split by row order, as the seed does (the first ``n_train`` rows train, the
  rest test), and draw ``n_val`` further rows from the same distribution for validation, so the
  seed's 100 training and 1,000 test rows stay exactly as they were.
- The data sets scikit-learn ships, and your own files (``data=csv``, ``data=npz``), use a stratified
  shuffle split: ``train_fraction`` of the rows are not test rows, and ``val_fraction`` of those
  validate; features are standardised with the training rows' statistics.

scikit-learn is imported inside the plugins, so that checking a config does not wait for it::

    from polyexp.core.data import DATASETS

    data = DATASETS["blobs"].bind({"n_train": 100})()
    data.x_train.shape, data.x_val.shape, data.x_test.shape   # (100, 2), (1000, 2), (1000, 2)
"""

from __future__ import annotations

import csv as csv_format
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import numpy as np

from polyexp.core.errors import ConfigError, PluginError
from polyexp.core.registry import File, Ge, Gt, Lt, Registry

DATASETS = Registry("data")

SPLITS = ("train", "val", "test")
ROW_RANKS = (2, 4)  # x is (rows, features) or (rows, height, width, channels)


@dataclass(frozen=True)
class Dataset:
    """Features (float32) and class ids (int32) of the training, validation and test rows."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] | None = None  # class id -> name, where the labels had names

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One row's shape: ``(features,)``, or ``(height, width, channels)`` for images."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_features(self) -> int:
        """Numbers per row (pixels times channels for images)."""
        return math.prod(self.input_shape)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of the split ``train``, ``val`` or ``test``."""
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")


def make_dataset(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    class_names: tuple[str, ...] | None = None,
) -> Dataset:
    """A Dataset of ``(x, y)`` pairs, as float32 features and int32 labels."""
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        (np.asarray(x, np.float32), np.asarray(y, np.int32)) for x, y in (train, val, test)
    )
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, class_names)


def split_rows(
    x: np.ndarray, y: np.ndarray, n_train: int, validation: tuple[np.ndarray, np.ndarray]
) -> Dataset:
    """The first ``n_train`` rows train, the rest test (the seed's split); ``validation`` validates."""
    if n_train >= len(x):
        raise ConfigError.field(
            "data.n_train", n_train, f"it must be below the number of rows ({len(x)}) so that test rows remain"
        )
    _require_all_classes(y, y[:n_train], "data.n_train", n_train)
    return make_dataset((x[:n_train], y[:n_train]), validation, (x[n_train:], y[n_train:]))


def split_stratified(
    x: np.ndarray,
    y: np.ndarray,
    *,
    train_fraction: float,
    val_fraction: float,
    split_seed: int,
    standardize: bool,
    class_names: tuple[str, ...] | None = None,
) -> Dataset:
    """Stratified shuffle splits: test rows, then validation rows out of the others; standardised."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    try:
        x_rest, x_test, y_rest, y_test = train_test_split(
            x, y, train_size=train_fraction, stratify=y, random_state=split_seed
        )
    except ValueError as exc:
        raise ConfigError.field("data.train_fraction", train_fraction, str(exc)) from None
    try:
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest, y_rest, test_size=val_fraction, stratify=y_rest, random_state=split_seed
        )
    except ValueError as exc:
        raise ConfigError.field("data.val_fraction", val_fraction, str(exc)) from None
    if standardize:  # every feature (every pixel of every channel, for images) on its own
        scaler = StandardScaler().fit(x_train.reshape(len(x_train), -1))
        x_train, x_val, x_test = (scaler.transform(part.reshape(len(part), -1)).reshape(part.shape)
                                  for part in (x_train, x_val, x_test))
    return make_dataset((x_train, y_train), (x_val, y_val), (x_test, y_test), class_names)


def check_dataset(data: object, label: str) -> Dataset:
    """Reject what a data plugin returned unless every split is usable for training and scoring."""
    if not isinstance(data, Dataset):
        raise PluginError(f"{label} returned {type(data).__name__}; it must return a polyexp.core.data.Dataset")
    for split in SPLITS:
        x, y = data.split(split)
        if x.ndim not in ROW_RANKS or y.ndim != 1 or len(x) != len(y):
            raise PluginError(f"{label}: x_{split} must be (rows, features) or (rows, height, width, channels) "
                              f"and y_{split} (rows,) of the same rows")
        if len(x) == 0:
            raise PluginError(f"{label} returned an empty {split} split")
        if x.shape[1:] != data.input_shape:
            raise PluginError(f"{label}: x_{split}'s rows are {x.shape[1:]}, x_train's {data.input_shape}")
        if not np.all(np.isfinite(x)):
            raise PluginError(f"{label} returned non-finite features in the {split} split")
        if y.min() < 0:
            raise PluginError(f"{label}: y_{split} holds a negative class id; classes are 0..C-1")
    missing = sorted(set(range(data.num_classes)) - set(np.unique(data.y_train).tolist()))
    if missing:
        raise PluginError(f"{label}: the training split lacks class {missing[0]}")
    return data


def further_rows(random_state: int) -> np.random.RandomState:
    """The random state that draws validation rows: another stream than ``random_state``'s own."""
    return np.random.RandomState(np.random.SeedSequence([random_state, 1]).generate_state(4))


@DATASETS.register
def blobs(
    *,
    n_samples: Annotated[int, Ge(2)] = 1100,
    centers: Annotated[int, Ge(2)] = 3,
    n_features: Annotated[int, Ge(1)] = 2,
    cluster_std: Annotated[float, Gt(0)] = 2.0,
    random_state: int = 2,
    n_train: Annotated[int, Ge(1)] = 100,
    n_val: Annotated[int, Ge(1)] = 1000,
) -> Dataset:
    """Gaussian blobs; the defaults are the seed's (1100 rows, 3 classes, the first 100 train);
    n_val more rows around the same centres validate."""
    from sklearn.datasets import make_blobs

    x, y, centres = make_blobs(
        n_samples=n_samples, centers=centers, n_features=n_features,
        cluster_std=cluster_std, random_state=random_state, return_centers=True,
    )
    validation = make_blobs(n_samples=n_val, centers=centres, cluster_std=cluster_std,
                            random_state=further_rows(random_state))
    return split_rows(x, y, n_train, validation)


@DATASETS.register
def moons(
    *,
    n_samples: Annotated[int, Ge(2)] = 1100,
    noise: Annotated[float, Ge(0)] = 0.2,
    random_state: int = 2,
    n_train: Annotated[int, Ge(1)] = 100,
    n_val: Annotated[int, Ge(2)] = 1000,
) -> Dataset:
    """Two interleaving half circles, 2 classes; the first n_train rows train, n_val further rows validate."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=random_state)
    validation = make_moons(n_samples=n_val, noise=noise, random_state=further_rows(random_state))
    return split_rows(x, y, n_train, validation)


@DATASETS.register
def circles(
    *,
    n_samples: Annotated[int, Ge(2)] = 1100,
    noise: Annotated[float, Ge(0)] = 0.1,
    factor: Annotated[float, Gt(0), Lt(1)] = 0.5,
    random_state: int = 2,
    n_train: Annotated[int, Ge(1)] = 100,
    n_val: Annotated[int, Ge(2)] = 1000,
) -> Dataset:
    """A small circle inside a large one, 2 classes; the first n_train rows train, n_val further rows validate."""
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=random_state)
    validation = make_circles(n_samples=n_val, noise=noise, factor=factor,
                              random_state=further_rows(random_state))
    return split_rows(x, y, n_train, validation)


# The split settings of every data set that comes as one table of rows (shipped or your own).
TrainFraction = Annotated[float, Gt(0), Lt(1)]
ValFraction = Annotated[float, Gt(0), Lt(1)]


def _register_shipped(name: str, summary: str) -> None:
    def load(
        *,
        train_fraction: TrainFraction = 0.5,
        val_fraction: ValFraction = 0.2,
        split_seed: int = 0,
        standardize: bool = True,
    ) -> Dataset:
        from sklearn import datasets

        x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        return split_stratified(x, y, train_fraction=train_fraction, val_fraction=val_fraction,
                                split_seed=split_seed, standardize=standardize)

    load.__name__ = load.__qualname__ = name
    load.__doc__ = (f"{summary}; a stratified split (test rows, then val_fraction of the rest validate), "
                    "standardised on the training rows.")
    DATASETS.register(load)


_register_shipped("digits", "Handwritten digits, 8x8 pixels: 1797 rows, 64 features, 10 classes")
_register_shipped("wine", "Wine cultivars: 178 rows, 13 features, 3 classes")
_register_shipped("iris", "Iris flowers: 150 rows, 4 features, 3 classes")
_register_shipped("breast_cancer", "Breast cancer diagnosis: 569 rows, 30 features, 2 classes")


DataFile = Annotated[str, File()]


@DATASETS.register
def csv(
    *,
    path: DataFile,
    target: str,
    features: Optional[list[str]] = None,  # noqa: UP045 - OmegaConf reads typing.Optional on Python 3.10
    train_fraction: TrainFraction = 0.5,
    val_fraction: ValFraction = 0.2,
    split_seed: int = 0,
    standardize: bool = True,
) -> Dataset:
    """Your own rows: a CSV file with a header row; the target column holds the classes (labels of any
    kind), the feature columns (every other one, or those listed) numbers."""
    file = _readable(path)
    with open(file, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv_format.reader(handle))
    if not rows:
        raise ConfigError.field("data.path", path, "the file is empty; it needs a header row, then one row per example")
    header, rows = [name.strip() for name in rows[0]], [row for row in rows[1:] if any(cell.strip() for cell in row)]
    columns = ", ".join(header)
    if not rows:
        raise ConfigError.field("data.path", path, "it has a header row and no rows after it; it needs one row "
                                                   "per example")
    if target not in header:
        raise ConfigError.field("data.target", target, f"{path} has no such column; its columns: {columns}")
    chosen = features if features is not None else [name for name in header if name != target]
    for name in chosen:
        if name not in header or name == target:
            raise ConfigError.field("data.features", chosen, f"{name!r} is not a feature column of {path}; "
                                                              f"its columns: {columns}")
    if not chosen:
        raise ConfigError.field("data.path", path, f"it has no feature column besides {target!r}")
    where = [header.index(name) for name in chosen]
    x = np.empty((len(rows), len(chosen)))
    for i, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ConfigError.field("data.path", path, f"line {i} has {len(row)} cells, the header {len(header)}")
        for j, column in enumerate(where):
            try:
                x[i - 2, j] = float(row[column])
            except ValueError:
                raise ConfigError.field("data.path", path, f"column {header[column]!r} is not numeric (line {i}: "
                                        f"{row[column]!r}); features must be numbers: drop or encode it, or list "
                                        "the numeric ones in data.features") from None
    labels = [row[header.index(target)].strip() for row in rows]
    return table_dataset(x, labels, path, ("data.target", target), train_fraction=train_fraction,
                         val_fraction=val_fraction, split_seed=split_seed, standardize=standardize)


@DATASETS.register
def npz(
    *,
    path: DataFile,
    train_fraction: TrainFraction = 0.5,
    val_fraction: ValFraction = 0.2,
    split_seed: int = 0,
    standardize: bool = True,
) -> Dataset:
    """Your own rows as NumPy arrays: an .npz file with x, (rows, features) or images (rows, height, width,
    channels), of numbers and y (rows,) of class labels."""
    file = _readable(path)
    try:
        with np.load(file, allow_pickle=False) as arrays:
            missing = [key for key in ("x", "y") if key not in arrays.files]
            if missing:
                raise ConfigError.field("data.path", path, f"it has no array {missing[0]!r}; it holds "
                                        f"{', '.join(arrays.files) or 'none'} (polyexp reads x and y)")
            x, y = arrays["x"], arrays["y"]
    except (OSError, ValueError) as exc:
        raise ConfigError.field("data.path", path, f"it is not a readable .npz file ({exc})") from None
    if x.ndim not in ROW_RANKS or y.ndim != 1 or len(x) != len(y):
        grey = " (grey images: add a channel axis, x[..., None])" if x.ndim == 3 else ""
        raise ConfigError.field("data.path", path, f"x must be (rows, features) or (rows, height, width, channels)"
                                f"{grey} and y (rows,); they are {x.shape} and {y.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ConfigError.field("data.path", path, f"x holds {x.dtype} values; features must be numbers")
    return table_dataset(x.astype(np.float64), [str(v) for v in y.tolist()], path, ("data.path", path),
                         train_fraction=train_fraction, val_fraction=val_fraction, split_seed=split_seed,
                         standardize=standardize)


def table_dataset(
    x: np.ndarray, labels: list[str], path: str, labelled_by: tuple[str, object], **split: object
) -> Dataset:
    """Rows of numbers and their labels (of any kind: each distinct label is a class), split and standardised.

    ``labelled_by`` is the field and value that name the labels, for messages.
    """
    if not np.all(np.isfinite(x)):
        raise ConfigError.field("data.path", path, "some features are not finite numbers (NaN or infinite)")
    if not labels:
        raise ConfigError.field("data.path", path, "it holds no rows; it needs one row per example")
    names = sorted(set(labels), key=_label_order)
    if len(names) < 2:
        raise ConfigError.field(*labelled_by, f"the labels hold a single class ({names[0]!r}); classification "
                                              "needs two or more")
    ids = {name: i for i, name in enumerate(names)}
    return split_stratified(x, np.array([ids[label] for label in labels]), class_names=tuple(names), **split)


def _label_order(label: str) -> tuple[int, float, str]:
    try:
        return 0, float(label), ""
    except ValueError:
        return 1, 0.0, label


def _readable(path: str) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        where = "" if file.is_absolute() else f" (relative to {Path.cwd()}, the folder polyexp was launched from)"
        raise ConfigError.field("data.path", path, f"no such file{where}")
    return file


def _require_all_classes(y: np.ndarray, y_train: np.ndarray, key: str, value: object) -> None:
    missing = sorted(set(np.unique(y).tolist()) - set(np.unique(y_train).tolist()))
    if missing:
        raise ConfigError.field(key, value, f"the training rows then lack class {missing[0]}; use more rows")
