"""Data sets (``data=...``): training, validation and test rows.

A data plugin takes no call arguments and returns a :class:`Dataset`; its keyword arguments are its
config. Labels are class ids ``0..C-1`` (the loss is categorical cross-entropy, as with one-hot
labels). The validation rows serve every choice a job makes (the best n, a selecting averaging, a
sweep's best job); the test rows only report the choice.

- The toy generators split by row order, as the seed does (the first ``n_train`` rows train, the
  rest test), and draw ``n_val`` further rows from the same distribution for validation, so the
  seed's 100 training and 1,000 test rows stay exactly as they were.
- The data sets scikit-learn ships use a stratified shuffle split: ``train_fraction`` of the rows are
  not test rows, and ``val_fraction`` of those validate; features are standardised with the training
  rows' statistics.
- Your own files (``data=csv``, ``data=npz``) may say each row's split (a split column; arrays
  ``x_train``, ``x_test``, ... or a split array); without validation rows, ``val_fraction`` of the test
  rows validate. Files that do not say get the shipped sets' split. They are standardised when polyexp
  trains here, and kept as they are when it scores your own checkpoints (the context entry
  ``own_checkpoints``), which also refuses a split polyexp would draw: it could validate and test on
  rows the model trained on.

scikit-learn is imported inside the plugins, so that checking a config does not wait for it::

    from polyexp.core.data import DATASETS

    data = DATASETS["blobs"].bind({"n_train": 100})()
    data.x_train.shape, data.x_val.shape, data.x_test.shape   # (100, 2), (1000, 2), (1000, 2)
"""

from __future__ import annotations

import csv as csv_format
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import numpy as np

from polyexp.core.errors import ConfigError, PluginError
from polyexp.core.registry import File, Ge, Gt, Lt, Registry

# own_checkpoints: trajectory=files scores the user's own checkpoint files, of a model that trained on some rows.
DATASETS = Registry("data", context=("own_checkpoints",))

SPLITS = ("train", "val", "test")
ROW_RANKS = (2, 4)  # x is (rows, features) or (rows, height, width, channels)
FINITE_CHUNK = 4096  # rows checked for NaN at a time


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
    parts = {"train": x_train, "val": x_val, "test": x_test}
    if standardize:
        parts = standardized(parts)
    return make_dataset((parts["train"], y_train), (parts["val"], y_val), (parts["test"], y_test), class_names)


def standardized(parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every split's features scaled with the ``train`` rows' mean and standard deviation, each feature (every
    pixel of every channel, for images) on its own."""
    from sklearn.preprocessing import StandardScaler

    # Small integers (uint8 pixels) are exact in float32: scaling them in float64 would double the memory.
    exact = {split: x.astype(np.result_type(x.dtype, np.float32), copy=False) for split, x in parts.items()}
    scaler = StandardScaler().fit(exact["train"].reshape(len(exact["train"]), -1))
    return {split: scaler.transform(x.reshape(len(x), -1)).reshape(x.shape) for split, x in exact.items()}


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
        if not all_finite(x):
            raise PluginError(f"{label} returned non-finite features in the {split} split")
        if y.min() < 0:
            raise PluginError(f"{label}: y_{split} holds a negative class id; classes are 0..C-1")
    missing = sorted(set(range(data.num_classes)) - set(np.unique(data.y_train).tolist()))
    if missing:
        raise PluginError(f"{label}: the training split lacks class {missing[0]}")
    return data


def all_finite(x: np.ndarray, rows: int = FINITE_CHUNK) -> bool:
    """Whether every number of ``x`` is finite, checked ``rows`` rows at a time: no temporary of x's size."""
    if x.dtype.kind in "biu":
        return True
    return all(np.isfinite(x[start:start + rows]).all() for start in range(0, len(x), rows))


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
# None: on when polyexp trains the model here, off when it scores your own checkpoint files (which saw your rows as
# they are in the file).
Standardize = Optional[bool]  # noqa: UP045 - OmegaConf reads typing.Optional on Python 3.10
Rows = tuple[np.ndarray, np.ndarray]  # the features and labels of the same rows
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
SPLIT_RULE = "each row's split must be train, val or test (or 0, 1, 2)"
SPLIT_ARRAYS = tuple(f"{axis}_{split}" for split in SPLITS for axis in ("x", "y"))
NPZ_ARRAYS = (*SPLIT_ARRAYS, "x", "y", "split")
NPZ_FORMS = "arrays x_train/y_train, x_test/y_test (and x_val/y_val), or x, y and a split array, or x and y"
UNKNOWN_TRAINING_ROWS = ("with trajectory=files polyexp cannot know which rows your model trained on, so a split it "
                         "draws could validate and test on training rows")


@DATASETS.register
def csv(
    *,
    path: DataFile,
    target: str,
    features: Optional[list[str]] = None,  # noqa: UP045 - OmegaConf reads typing.Optional on Python 3.10
    split_column: Optional[str] = None,  # noqa: UP045
    train_fraction: TrainFraction = 0.5,
    val_fraction: ValFraction = 0.2,
    split_seed: int = 0,
    standardize: Standardize = None,
    own_checkpoints: bool = False,
) -> Dataset:
    """Your own rows: a CSV file with a header row; the target column holds the classes (labels of any
    kind), the feature columns (every other one, or those listed) numbers, the split column (if named) each
    row's split: train, val or test.

    Without a split column the rows get the shipped sets' stratified split, which ``own_checkpoints``
    (trajectory=files: your model trained on some of these rows) refuses. ``standardize`` None: on unless
    ``own_checkpoints``.
    """
    file = _readable(path)
    if own_checkpoints and split_column is None:
        raise ConfigError.field("data.split_column", None, f"{UNKNOWN_TRAINING_ROWS}; add a column to {path} that "
                                "says train, val or test for each row and name it: data.split_column=NAME")
    header, rows = _csv_rows(file, path)
    columns = ", ".join(header)
    if target not in header:
        raise ConfigError.field("data.target", target, f"{path} has no such column; its columns: {columns}")
    if split_column is not None and (split_column not in header or split_column == target):
        why = "it is the target column" if split_column == target else f"{path} has no such column"
        raise ConfigError.field("data.split_column", split_column, f"{why}; its columns: {columns}")
    chosen = features if features is not None else [name for name in header if name not in (target, split_column)]
    for name in chosen:
        if name not in header or name in (target, split_column):
            raise ConfigError.field("data.features", chosen, f"{name!r} is not a feature column of {path}; "
                                                              f"its columns: {columns}")
    if not chosen:
        raise ConfigError.field("data.path", path, f"it has no feature column besides {target!r}")
    x = _csv_features(header, rows, chosen, path)
    labels = np.array([row[header.index(target)].strip() for row in rows])
    scaled = standardize if standardize is not None else not own_checkpoints
    if split_column is None:
        return table_dataset(x, labels.tolist(), path, ("data.target", target), train_fraction=train_fraction,
                             val_fraction=val_fraction, split_seed=split_seed, standardize=scaled)
    column = header.index(split_column)
    codes = _split_codes(np.array([row[column] for row in rows]), "data.split_column", split_column,
                         lambda bad: f"line {_line_of(rows, column, bad)} says {bad!r}; {SPLIT_RULE}")
    parts = _split_parts(x, labels, codes, "data.split_column", split_column)
    return given_dataset(parts, path, ("data.target", target), val_fraction=val_fraction, split_seed=split_seed,
                         standardize=scaled)


def _line_of(rows: list[list[str]], column: int, cell: str) -> int:
    """The file line (the header is line 1) of the first row whose ``column`` holds ``cell``."""
    return next(i for i, row in enumerate(rows, start=2) if row[column].strip() == cell)


def _csv_rows(file: Path, path: str) -> tuple[list[str], list[list[str]]]:
    """The header's column names and the non-blank rows after it."""
    with open(file, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv_format.reader(handle))
    if not rows:
        raise ConfigError.field("data.path", path, "the file is empty; it needs a header row, then one row per example")
    header, rows = [name.strip() for name in rows[0]], [row for row in rows[1:] if any(cell.strip() for cell in row)]
    if not rows:
        raise ConfigError.field("data.path", path, "it has a header row and no rows after it; it needs one row "
                                                   "per example")
    return header, rows


def _csv_features(header: list[str], rows: list[list[str]], chosen: list[str], path: str) -> np.ndarray:
    """The ``chosen`` columns as numbers, (rows, features)."""
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
    return x


@DATASETS.register
def npz(
    *,
    path: DataFile,
    train_fraction: TrainFraction = 0.5,
    val_fraction: ValFraction = 0.2,
    split_seed: int = 0,
    standardize: Standardize = None,
    own_checkpoints: bool = False,
) -> Dataset:
    """Your own rows as NumPy arrays: an .npz file with x_train/y_train, x_test/y_test (and x_val/y_val), or x,
    y and a split array (train, val or test per row), or x and y alone; x (rows, features) or images (rows,
    height, width, channels) of numbers, y (rows,) class labels.

    Without x_val/y_val (or val rows), val_fraction of the test rows validate. x and y alone get the shipped
    sets' stratified split, which ``own_checkpoints`` (trajectory=files: your model trained on some of these
    rows) refuses. ``standardize`` None: on unless ``own_checkpoints``.
    """
    arrays = _read_npz(path)
    scaled = standardize if standardize is not None else not own_checkpoints
    parts = _npz_parts(arrays, path)
    if parts is not None:
        return given_dataset(parts, path, ("data.path", path), val_fraction=val_fraction, split_seed=split_seed,
                             standardize=scaled)
    if own_checkpoints:
        raise ConfigError.field("data.path", path, f"{UNKNOWN_TRAINING_ROWS}; save x_train/y_train, x_test/y_test "
                                "(and x_val/y_val) in the file, or x, y and a split array of train, val or test")
    x, y = _npz_pair(arrays, path, "x", "y")
    return table_dataset(x, [str(v) for v in y.tolist()], path, ("data.path", path), train_fraction=train_fraction,
                         val_fraction=val_fraction, split_seed=split_seed, standardize=scaled)


def _read_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays polyexp reads (``NPZ_ARRAYS``) of the .npz file at ``path``, by name; the others stay unread."""
    file = _readable(path)
    try:
        loaded = np.load(file, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array; save named arrays with numpy.savez")
        with loaded:
            names = list(loaded.files)
            found = {name: loaded[name] for name in NPZ_ARRAYS if name in names}
    except (OSError, ValueError) as exc:
        raise ConfigError.field("data.path", path, f"it is not a readable .npz file ({exc})") from None
    if not found:
        raise ConfigError.field("data.path", path, f"it has no array 'x'; it holds {', '.join(names) or 'none'} "
                                                   f"(polyexp reads {NPZ_FORMS})")
    return found


def _npz_parts(arrays: dict[str, np.ndarray], path: str) -> dict[str, Rows] | None:
    """The splits the file gives, as (x, y) by split name (no ``val`` when it gives none); None for x and y alone."""
    given = [name for name in SPLIT_ARRAYS if name in arrays]
    whole = [name for name in ("x", "y", "split") if name in arrays]
    if given and whole:
        raise ConfigError.field("data.path", path, f"it holds both {given[0]} and {whole[0]}; give one form: "
                                                   f"{NPZ_FORMS}")
    if not given:
        x, y = _npz_pair(arrays, path, "x", "y")
        if "split" not in arrays:
            return None
        split = arrays["split"]
        if split.shape != y.shape:
            raise ConfigError.field("data.path", path, f"its split array is {split.shape}; it must be (rows,), one "
                                                       f"split per row of x ({len(x)} rows)")
        codes = _split_codes(split, "data.path", path, lambda bad: f"its split array holds {bad!r}; {SPLIT_RULE}")
        return _split_parts(x, y, codes, "data.path", path)
    parts = {}
    for split in SPLITS:
        if f"x_{split}" in arrays or f"y_{split}" in arrays or split != "val":
            parts[split] = _npz_pair(arrays, path, f"x_{split}", f"y_{split}")
    kinds = {split: y.dtype for split, (_, y) in parts.items()}
    if len({dtype.kind for dtype in kinds.values()}) > 1:
        shown = ", ".join(f"y_{split} {dtype}" for split, dtype in kinds.items())
        raise ConfigError.field("data.path", path, f"its labels are of different kinds ({shown}); give every split's "
                                                   "labels one kind, so that a label names one class in all of them")
    return parts


def _npz_pair(arrays: dict[str, np.ndarray], path: str, x_name: str, y_name: str) -> Rows:
    """The arrays ``x_name`` and ``y_name`` of one split: features (2-d, or 4-d images) and labels of the same rows."""
    for name, other in ((x_name, y_name), (y_name, x_name)):
        if name not in arrays:
            has = f"it has {other} and no {name}" if other in arrays else f"it has no array {name!r}"
            raise ConfigError.field("data.path", path, f"{has}; polyexp reads {NPZ_FORMS}")
    x, y = arrays[x_name], arrays[y_name]
    if x.ndim not in ROW_RANKS or y.ndim != 1 or len(x) != len(y):
        grey = " (grey images: add a channel axis, x[..., None])" if x.ndim == 3 else ""
        raise ConfigError.field("data.path", path, f"{x_name} must be (rows, features) or (rows, height, width, "
                                f"channels){grey} and {y_name} (rows,); they are {x.shape} and {y.shape}")
    if x.dtype.kind not in "iuf":
        raise ConfigError.field("data.path", path, f"{x_name} holds {x.dtype} values; features must be real numbers")
    return x, y


def _split_codes(values: np.ndarray, key: str, value: object, bad_value: Callable[[object], str]) -> np.ndarray:
    """Each row's split as 0 (train), 1 (val) or 2 (test), from the names or the numbers 0, 1, 2.

    ``bad_value`` says where a value that is neither was found, for the message.
    """
    if values.dtype.kind in "iu":
        wrong = values[(values < 0) | (values > 2)]
        if len(wrong):
            raise ConfigError.field(key, value, bad_value(int(wrong[0])))
        return values.astype(np.int8)
    if values.dtype.kind == "S":
        values = values.astype(str)
    if values.dtype.kind != "U":
        raise ConfigError.field(key, value, f"the split array holds {values.dtype} values; {SPLIT_RULE}")
    names = np.char.strip(values)
    codes = np.full(len(names), -1, np.int8)
    for name, code in (*SPLIT_CODES.items(), *((str(code), code) for code in SPLIT_CODES.values())):
        codes[names == name] = code
    if (codes < 0).any():
        raise ConfigError.field(key, value, bad_value(str(names[np.argmax(codes < 0)])))
    return codes


def _split_parts(x: np.ndarray, y: np.ndarray, codes: np.ndarray, key: str, value: object) -> dict[str, Rows]:
    """The rows of each split the codes name (no ``val`` when no row is a validation row)."""
    parts = {}
    for split, code in SPLIT_CODES.items():
        rows = np.flatnonzero(codes == code)
        if len(rows) == 0 and split != "val":
            raise ConfigError.field(key, value, f"no row is a {split} row; {SPLIT_RULE}, and train and test need rows")
        if len(rows):
            parts[split] = _take(x, rows), _take(y, rows)
    return parts


def _take(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` for sorted rows; a view, not a copy, when they are one block."""
    if rows[-1] - rows[0] + 1 == len(rows):
        return array[rows[0]:rows[-1] + 1]
    return array[rows]


def given_dataset(
    parts: dict[str, Rows],
    path: str,
    labelled_by: tuple[str, object],
    *,
    val_fraction: float,
    split_seed: int,
    standardize: bool,
) -> Dataset:
    """The splits a file gives (``train``, ``test`` and maybe ``val``, each features and labels of any kind).

    Without ``val``, ``val_fraction`` of the test rows validate (stratified, drawn with ``split_seed``): rows a
    model trained on the training rows never saw. ``labelled_by`` is the field and value that name the labels.
    """
    shape = parts["train"][0].shape[1:]
    for split, (x, _) in parts.items():
        if len(x) == 0:
            raise ConfigError.field("data.path", path, f"its {split} split has no rows; each split it gives needs rows")
        if x.shape[1:] != shape:
            raise ConfigError.field("data.path", path, f"its {split} rows are {x.shape[1:]}, its train rows {shape}; "
                                                       "every split's rows must have one shape")
        if not all_finite(x):
            raise ConfigError.field("data.path", path, f"some features of its {split} rows are not finite numbers "
                                                       "(NaN or infinite)")
    labels = {split: [str(v) for v in y.tolist()] for split, (_, y) in parts.items()}
    names = classes_of(*labels.values(), labelled_by=labelled_by)
    ids = {split: class_ids(values, names) for split, values in labels.items()}
    trained = set(np.unique(ids["train"]).tolist())
    for split in parts:
        missing = sorted(set(np.unique(ids[split]).tolist()) - trained)
        if missing:
            raise ConfigError.field("data.path", path, f"its {split} rows hold class {names[missing[0]]!r}, which no "
                                                       "train row has; every class needs training rows")
    x = {split: features for split, (features, _) in parts.items()}
    if "val" not in parts:
        x["test"], x["val"], ids["test"], ids["val"] = _draw(x["test"], ids["test"], val_fraction, split_seed)
    if standardize:
        x = standardized(x)
    return make_dataset(*((x[split], ids[split]) for split in SPLITS), class_names=names)


def _draw(x: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> list[np.ndarray]:
    """``x_rest, x_drawn, y_rest, y_drawn``: ``fraction`` of the rows drawn, stratified by class."""
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(x, y, test_size=fraction, stratify=y, random_state=seed)
    except ValueError as exc:
        raise ConfigError.field("data.val_fraction", fraction, f"it draws the validation rows out of the test rows: "
                                                               f"{exc}") from None


def table_dataset(
    x: np.ndarray, labels: list[str], path: str, labelled_by: tuple[str, object], **split: object
) -> Dataset:
    """Rows of numbers and their labels (of any kind: each distinct label is a class), split and standardised.

    ``labelled_by`` is the field and value that name the labels, for messages.
    """
    if not labels:
        raise ConfigError.field("data.path", path, "it holds no rows; it needs one row per example")
    if not all_finite(x):
        raise ConfigError.field("data.path", path, "some features are not finite numbers (NaN or infinite)")
    names = classes_of(labels, labelled_by=labelled_by)
    return split_stratified(x, class_ids(labels, names), class_names=names, **split)


def classes_of(*labels: list[str], labelled_by: tuple[str, object]) -> tuple[str, ...]:
    """The distinct labels of all ``labels`` lists, sorted (numbers by value): class id -> name.

    ``labelled_by`` is the field and value that name the labels, for messages.
    """
    names = sorted(set().union(*labels), key=_label_order)
    if len(names) < 2:
        raise ConfigError.field(*labelled_by, f"the labels hold a single class ({names[0]!r}); classification "
                                              "needs two or more")
    return tuple(names)


def class_ids(labels: list[str], names: tuple[str, ...]) -> np.ndarray:
    """Each label's class id: its place in ``names``."""
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[label] for label in labels], np.int32)


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
