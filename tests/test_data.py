"""Data plugins: the seed's blobs split, standardised real data sets, clear errors for bad splits."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from polyexp.core.data import DATASETS, Dataset, check_dataset
from polyexp.core.errors import ConfigError, PluginError


def test_blobs_default_is_the_seed_split_with_validation_rows_around_the_same_centres():
    x, y, centres = make_blobs(n_samples=1100, centers=3, n_features=2, cluster_std=2, random_state=2,
                               return_centers=True)
    data = DATASETS["blobs"].bind({})()
    np.testing.assert_allclose(data.x_train, x[:100].astype(np.float32))
    np.testing.assert_allclose(data.x_test, x[100:].astype(np.float32))
    np.testing.assert_array_equal(data.y_test, y[100:])
    assert (data.num_features, data.num_classes) == (2, 3)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    assert len(data.x_val) == 1000 and np.bincount(data.y_val).tolist() == [334, 333, 333]
    for c in range(3):  # the same distribution: each class's rows spread around its centre
        np.testing.assert_allclose(data.x_val[data.y_val == c].mean(axis=0), centres[c], atol=0.3)
        np.testing.assert_allclose(data.x_val[data.y_val == c].std(axis=0), [2, 2], atol=0.2)
    assert not any((row == x).all(axis=1).any() for row in data.x_val)  # new rows, none of the seed's


@pytest.mark.parametrize(("name", "features", "classes"), [
    ("digits", 64, 10), ("wine", 13, 3), ("iris", 4, 3), ("breast_cancer", 30, 2),
])
def test_shipped_data_sets_are_split_stratified_and_standardised(name, features, classes):
    data = DATASETS[name].bind({})()
    assert (data.num_features, data.num_classes) == (features, classes)
    rows = len(data.x_train) + len(data.x_val) + len(data.x_test)
    assert abs(len(data.x_test) - rows / 2) <= 1  # train_fraction 0.5: half the rows are not test rows
    assert abs(len(data.x_val) - 0.2 * (rows - len(data.x_test))) <= 1  # val_fraction 0.2 of those
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    for split in ("train", "val", "test"):
        assert set(np.unique(data.split(split)[1])) == set(range(classes))
    plain = DATASETS[name].bind({"standardize": False})()
    more_validation = DATASETS[name].bind({"standardize": False, "val_fraction": 0.5})()
    np.testing.assert_array_equal(plain.x_test, more_validation.x_test)  # validation comes out of the others
    assert len(more_validation.x_val) > len(plain.x_val)
    assert not np.allclose(plain.x_train.mean(axis=0), 0, atol=1e-3)


@pytest.mark.parametrize("name", ["moons", "circles"])
def test_toy_generators_have_two_classes(name):
    data = DATASETS[name].bind({"n_samples": 300, "n_train": 50})()
    assert (len(data.x_train), len(data.x_test), len(data.x_val), data.num_classes) == (50, 250, 1000, 2)


def test_check_dataset_rejects_what_training_cannot_use():
    x, y = np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1], np.int32)
    with pytest.raises(PluginError, match=r"returned tuple; it must return a polyexp\.core\.data\.Dataset"):
        check_dataset((x, y), "data plugin 'p'")
    with pytest.raises(PluginError, match="empty test split"):
        check_dataset(Dataset(x, y, x, y, x[:0], y[:0]), "data plugin 'p'")
    with pytest.raises(PluginError, match="empty val split"):
        check_dataset(Dataset(x, y, x[:0], y[:0], x, y), "data plugin 'p'")
    with pytest.raises(PluginError, match="the training split lacks class 2"):
        check_dataset(Dataset(x, y, x, y, x, y + 1), "data plugin 'p'")
    with pytest.raises(PluginError, match="non-finite features in the train split"):
        check_dataset(Dataset(x + np.nan, y, x, y, x, y), "data plugin 'p'")
    with pytest.raises(PluginError, match=r"x_val.s rows are \(3,\), x_train.s \(2,\)"):
        check_dataset(Dataset(x, y, np.zeros((4, 3), np.float32), y, x, y), "data plugin 'p'")


def write_csv(path, header: str, rows: list[str]) -> str:
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


def iris_like(tmp_path, rows_per_class: int = 20):
    rng = np.random.default_rng(0)
    lines = [f"{a:.3f},{b:.3f},{name}" for name, centre in (("setosa", 0), ("versicolor", 3), ("virginica", 6))
             for a, b in rng.normal(centre, 1, size=(rows_per_class, 2))]
    return write_csv(tmp_path / "flowers.csv", "width,length,species", lines)


def test_a_csv_file_gives_classes_from_any_labels_with_the_shipped_sets_split(tmp_path):
    data = DATASETS["csv"].bind({"path": iris_like(tmp_path), "target": "species"})()
    assert data.class_names == ("setosa", "versicolor", "virginica") and data.num_features == 2
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (24, 6, 30)
    for split in ("train", "val", "test"):
        assert np.bincount(data.split(split)[1]).tolist() == [len(data.split(split)[1]) // 3] * 3
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-6)  # standardised on the training rows
    only = DATASETS["csv"].bind({"path": iris_like(tmp_path), "target": "species", "features": ["length"]})()
    assert only.num_features == 1


def test_numeric_labels_keep_their_order(tmp_path):
    path = write_csv(tmp_path / "n.csv", "x,y", [f"{i},{label}" for i in range(30) for label in ("2", "10", "1")])
    assert DATASETS["csv"].bind({"path": path, "target": "y"})().class_names == ("1", "2", "10")


@pytest.mark.parametrize(("content", "config", "message"), [
    (None, {"target": "species"}, "data.path='{path}' is not allowed: no such file"),
    ("width,length,species\n1,2,a\n", {"target": "kind"},
     "data.target='kind' is not allowed: {path} has no such column; its columns: width, length, species"),
    ("width,colour,species\n" + "1,red,a\n" * 5, {"target": "species"},
     "data.path='{path}' is not allowed: column 'colour' is not numeric (line 2: 'red')"),
    ("width,species\n" + "1,a\n" * 30, {"target": "species"},
     "data.target='species' is not allowed: the labels hold a single class ('a'); classification needs two or more"),
    ("width,species\n", {"target": "species"}, "data.path='{path}' is not allowed: it has a header row and no rows "
                                               "after it; it needs one row per example"),
    ("width,species\n\n , \n", {"target": "species"}, "data.path='{path}' is not allowed: it has a header row and no"),
    ("width,species\n1,a\n2,b\n3,a\n", {"target": "species"}, "data.train_fraction=0.5 is not allowed"),
    ("width,species\n1,a,3\n", {"target": "species"}, "data.path='{path}' is not allowed: line 2 has 3 cells"),
    ("width,species\n" + "1,a\n2,b\n" * 10, {"target": "species", "features": ["height"]},
     "data.features=['height'] is not allowed: 'height' is not a feature column"),
])
def test_a_csv_that_cannot_be_used_fails_in_one_line_naming_the_problem(tmp_path, content, config, message):
    path = tmp_path / "rows.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as error:
        DATASETS["csv"].bind({"path": str(path), **config})()
    assert message.format(path=path) in str(error.value) and "\n" not in str(error.value)


def test_an_npz_file_with_x_and_y(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "rows.npz", x=rng.normal(size=(60, 3)), y=np.repeat(["cat", "dog"], 30))
    data = DATASETS["npz"].bind({"path": str(tmp_path / "rows.npz")})()
    assert data.class_names == ("cat", "dog") and data.num_features == 3
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 3)), y=np.zeros(0))
    with pytest.raises(ConfigError, match=r"empty.npz' is not allowed: it holds no rows; it needs one row per example"):
        DATASETS["npz"].bind({"path": str(tmp_path / "empty.npz")})()
    np.savez(tmp_path / "bad.npz", features=np.zeros((4, 2)))
    with pytest.raises(ConfigError, match="it has no array 'x'; it holds features"):
        DATASETS["npz"].bind({"path": str(tmp_path / "bad.npz")})()


def colour_images(rows: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8x6 RGB images of 3 classes: class c's channel c is brighter."""
    rng = np.random.default_rng(seed)
    y = np.arange(rows) % 3
    x = rng.normal(size=(rows, 8, 6, 3))
    x[np.arange(rows), :, :, y] += 1.5
    return x, y


def test_an_npz_file_of_colour_images_keeps_their_shape_standardised_per_pixel(tmp_path):
    x, y = colour_images()
    np.savez(tmp_path / "images.npz", x=x, y=y)
    data = check_dataset(DATASETS["npz"].bind({"path": str(tmp_path / "images.npz")})(), "npz")
    assert data.x_train.shape[1:] == data.x_test.shape[1:] == data.input_shape == (8, 6, 3)
    assert data.num_features == 144 and data.num_classes == 3
    flat = data.x_train.reshape(len(data.x_train), -1)
    np.testing.assert_allclose(flat.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(flat.std(axis=0), 1, atol=1e-5)
    # Every row of the file is in exactly one split, its pixels in place (up to the per-pixel scaling).
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == len(x)


@pytest.mark.parametrize("shape", [(30, 8, 6), (30, 8, 6, 3, 1), (30,)])
def test_an_image_array_of_the_wrong_rank_fails_in_one_line_naming_the_field(tmp_path, shape):
    np.savez(tmp_path / "images.npz", x=np.zeros(shape), y=np.arange(30) % 2)
    with pytest.raises(ConfigError) as error:
        DATASETS["npz"].bind({"path": str(tmp_path / "images.npz")})()
    message = str(error.value)
    assert message.startswith("data.path=") and "(rows, height, width, channels)" in message and "\n" not in message
    assert ("add a channel axis" in message) == (len(shape) == 3)


# Your own splits: the rows as your model saw them.

SPLIT_NAMES = ("train", "val", "test")


def labelled_rows(rows: int, features: int = 3, seed: int = 0, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 3 classes (``a``, ``b``, ``c``, in turn), each class's features around its own centre."""
    rng = np.random.default_rng(seed)
    ids = np.arange(rows) % 3
    return (rng.normal(size=(rows, features)) + 4 * ids[:, None]).astype(dtype), np.array(["a", "b", "c"])[ids]


def explicit_splits(val: bool = True, shape: tuple[int, ...] = (3,)) -> dict[str, np.ndarray]:
    """x_train/y_train (60 rows), x_test/y_test (30) and, with ``val``, x_val/y_val (15): other rows each."""
    arrays = {}
    for seed, (split, rows) in enumerate((("train", 60), ("val", 15), ("test", 30))):
        if split != "val" or val:
            x, y = labelled_rows(rows, int(np.prod(shape)), seed)
            arrays[f"x_{split}"], arrays[f"y_{split}"] = x.reshape(rows, *shape), y
    return arrays


def npz_data(tmp_path, arrays: dict, **config):
    """The bound npz plugin of a file holding ``arrays``; call it with or without ``own_checkpoints``."""
    np.savez(tmp_path / "rows.npz", **arrays)
    return DATASETS["npz"].bind({"path": str(tmp_path / "rows.npz"), **config})


def assert_rows_of(part: np.ndarray, whole: np.ndarray) -> None:
    """Every row of ``part`` is a row of ``whole``, each a different one."""
    flat_whole = whole.reshape(len(whole), -1)
    found = [np.flatnonzero((flat_whole == row).all(axis=1)) for row in part.reshape(len(part), -1)]
    assert all(len(rows) == 1 for rows in found)
    assert len({int(rows[0]) for rows in found}) == len(part)


@pytest.mark.parametrize("shape", [(3,), (4, 2, 3)], ids=["rows", "images"])
def test_an_npz_file_of_train_val_and_test_arrays_is_scored_on_those_rows_as_they_are(tmp_path, shape):
    arrays = explicit_splits(shape=shape)
    data = check_dataset(npz_data(tmp_path, arrays)(own_checkpoints=True), "npz")
    for split in SPLIT_NAMES:
        x, y = data.split(split)
        np.testing.assert_array_equal(x, arrays[f"x_{split}"])
        assert x.dtype == np.float32 and x.shape[1:] == shape
        np.testing.assert_array_equal(y, np.searchsorted(["a", "b", "c"], arrays[f"y_{split}"]))
    assert data.class_names == ("a", "b", "c") and data.input_shape == shape


@pytest.mark.parametrize("codes", [("train", "val", "test"), (0, 1, 2), (b"train", b"val", b"test")],
                         ids=["names", "numbers", "bytes"])
@pytest.mark.parametrize("shape", [(3,), (4, 2, 3)], ids=["rows", "images"])
def test_an_npz_file_with_a_split_array_keeps_each_row_in_its_split(tmp_path, codes, shape):
    x, y = labelled_rows(90, int(np.prod(shape)))
    x = x.reshape(90, *shape)
    which = np.random.default_rng(3).permutation(np.arange(90) % 6 // 2)  # 30 rows of each split, interleaved
    split = np.array(codes)[which]
    data = check_dataset(npz_data(tmp_path, {"x": x, "y": y, "split": split})(own_checkpoints=True), "npz")
    for code, name in enumerate(SPLIT_NAMES):
        np.testing.assert_array_equal(data.split(name)[0], x[which == code])
        np.testing.assert_array_equal(data.split(name)[1], np.arange(90)[which == code] % 3)


def test_splits_in_one_block_each_are_views_of_the_file_s_array_not_copies(tmp_path):
    x, y = labelled_rows(90)
    split = np.repeat(["train", "val", "test"], [50, 10, 30])
    data = npz_data(tmp_path, {"x": x, "y": y, "split": split})(own_checkpoints=True)
    assert data.x_train.base is not None and data.x_train.base is data.x_val.base is data.x_test.base
    np.testing.assert_array_equal(data.x_test, x[60:])


def test_float32_rows_scored_as_they_are_are_loaded_once_and_never_as_float64(tmp_path):
    import tracemalloc

    arrays = {f"{axis}_{split}": value for split, rows in (("train", 3000), ("val", 500), ("test", 1000))
              for axis, value in zip("xy", labelled_rows(rows, features=256), strict=True)}
    bound = npz_data(tmp_path, arrays)
    size = sum(arrays[f"x_{split}"].nbytes for split in SPLIT_NAMES)  # 4.6 MB
    tracemalloc.start()
    try:
        data = check_dataset(bound(own_checkpoints=True), "npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data.x_train.dtype == np.float32
    assert peak < 1.3 * size  # the arrays read from the file, and nothing of their size besides (float64: 3x)


def test_check_dataset_finds_a_non_finite_feature_past_the_first_chunk_without_a_full_size_temporary():
    import tracemalloc

    x, y = np.zeros((40_000, 32), np.float32), np.arange(40_000, dtype=np.int32) % 2
    tracemalloc.start()
    try:
        check_dataset(Dataset(x, y, x[:10], y[:10], x[:10], y[:10]), "p")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.size / 4  # np.isfinite(x) would take x.size bytes at once
    x[39_999, 31] = np.inf
    with pytest.raises(PluginError, match="non-finite features in the train split"):
        check_dataset(Dataset(x, y, x[:10], y[:10], x[:10], y[:10]), "p")


def test_without_validation_rows_a_fraction_of_the_test_rows_validate_and_no_training_row(tmp_path):
    arrays = explicit_splits(val=False)
    data = npz_data(tmp_path, arrays, val_fraction=0.2)(own_checkpoints=True)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (60, 6, 24)
    assert np.bincount(data.y_val).tolist() == [2, 2, 2]  # stratified
    np.testing.assert_array_equal(data.x_train, arrays["x_train"])
    assert_rows_of(data.x_val, arrays["x_test"])
    assert_rows_of(np.concatenate([data.x_val, data.x_test]), arrays["x_test"])  # every test row once
    assert not any((arrays["x_train"] == row).all(axis=1).any() for row in data.x_val)
    again = npz_data(tmp_path, arrays, val_fraction=0.2)(own_checkpoints=True)
    np.testing.assert_array_equal(again.x_val, data.x_val)  # split_seed decides the draw
    other = npz_data(tmp_path, arrays, val_fraction=0.2, split_seed=1)(own_checkpoints=True)
    assert not np.array_equal(other.x_val, data.x_val)


def test_a_split_array_without_val_rows_validates_on_test_rows(tmp_path):
    x, y = labelled_rows(90)
    split = np.where(np.arange(90) < 60, 0, 2)
    data = npz_data(tmp_path, {"x": x, "y": y, "split": split}, val_fraction=0.5)(own_checkpoints=True)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (60, 15, 15)
    assert_rows_of(np.concatenate([data.x_val, data.x_test]), x[60:])


def test_standardize_defaults_to_on_when_polyexp_trains_and_off_for_your_own_checkpoints(tmp_path):
    arrays = explicit_splits()
    bound = npz_data(tmp_path, arrays)
    for trained in (bound(), bound(own_checkpoints=False)):
        np.testing.assert_allclose(trained.x_train.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(trained.x_train.std(axis=0), 1, atol=1e-5)
    np.testing.assert_array_equal(bound(own_checkpoints=True).x_train, arrays["x_train"])
    scaled = npz_data(tmp_path, arrays, standardize=True)(own_checkpoints=True)
    mean, std = arrays["x_train"].astype(np.float64).mean(axis=0), arrays["x_train"].astype(np.float64).std(axis=0)
    for split in SPLIT_NAMES:  # fitted on the training rows, applied to every split
        np.testing.assert_allclose(scaled.split(split)[0], (arrays[f"x_{split}"] - mean) / std, rtol=1e-5, atol=1e-5)
    plain = npz_data(tmp_path, arrays, standardize=False)()
    np.testing.assert_array_equal(plain.x_test, arrays["x_test"])


def test_built_in_data_sets_are_the_same_with_own_checkpoints():
    for name in ("blobs", "digits"):
        bound = DATASETS[name].bind({})
        np.testing.assert_array_equal(bound(own_checkpoints=True).x_val, bound().x_val)


def split_csv(tmp_path, cells=("train", "val", "test")) -> tuple[str, np.ndarray, np.ndarray]:
    """A CSV of 90 rows: features a, b, a fold column of ``cells`` (30 rows each, interleaved), the species."""
    x, y = labelled_rows(90, features=2, dtype=np.float64)
    which = np.arange(90) // 3 % 3
    lines = [f"{a:.3f},{cells[k]},{b:.3f},{label}" for (a, b), k, label in zip(x, which, y, strict=True)]
    return write_csv(tmp_path / "rows.csv", "a,fold,b,species", lines), np.round(x, 3), which


@pytest.mark.parametrize("cells", [("train", "val", "test"), (" 0", "1", "2 ")])
def test_a_csv_split_column_says_each_row_s_split_and_is_no_feature(tmp_path, cells):
    path, x, which = split_csv(tmp_path, cells)
    data = DATASETS["csv"].bind({"path": path, "target": "species", "split_column": "fold"})(own_checkpoints=True)
    assert data.num_features == 2 and data.class_names == ("a", "b", "c")
    for code, split in enumerate(SPLIT_NAMES):
        np.testing.assert_allclose(data.split(split)[0], x[which == code], rtol=1e-6)
    trained = DATASETS["csv"].bind({"path": path, "target": "species", "split_column": "fold"})()
    np.testing.assert_allclose(trained.x_train.mean(axis=0), 0, atol=1e-6)


def test_a_csv_split_column_without_val_rows_validates_on_test_rows(tmp_path):
    path, x, which = split_csv(tmp_path, ("train", "test", "test"))
    data = DATASETS["csv"].bind({"path": path, "target": "species", "split_column": "fold"})(own_checkpoints=True)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (30, 12, 48)
    assert_rows_of(np.concatenate([data.x_val, data.x_test]), x[which > 0].astype(np.float32))


def test_a_split_polyexp_would_draw_is_refused_for_your_own_checkpoints(tmp_path):
    x, y = labelled_rows(60)
    with pytest.raises(ConfigError) as error:
        npz_data(tmp_path, {"x": x, "y": y})(own_checkpoints=True)
    assert str(error.value) == (
        f"data.path='{tmp_path / 'rows.npz'}' is not allowed: with trajectory=files polyexp cannot know which rows "
        "your model trained on, so a split it draws could validate and test on training rows; save x_train/y_train, "
        "x_test/y_test (and x_val/y_val) in the file, or x, y and a split array of train, val or test")
    assert len(npz_data(tmp_path, {"x": x, "y": y})().x_val) == 6  # polyexp training here: its own split
    with pytest.raises(ConfigError) as error:
        DATASETS["csv"].bind({"path": iris_like(tmp_path), "target": "species"})(own_checkpoints=True)
    message = str(error.value)
    assert message.startswith("data.split_column=None is not allowed: with trajectory=files polyexp cannot know")
    assert message.endswith("name it: data.split_column=NAME") and "\n" not in message


def bad_npz_forms() -> list:
    x, y = labelled_rows(60)
    good = explicit_splits()
    images = explicit_splits(shape=(2, 3, 1))
    return [
        pytest.param({k: v for k, v in good.items() if k != "y_train"}, "it has x_train and no y_train; polyexp reads "
                     "arrays x_train/y_train, x_test/y_test (and x_val/y_val), or x, y and a split array, or x and y",
                     id="x_train without y_train"),
        pytest.param({k: v for k, v in good.items() if k != "x_val"}, "it has y_val and no x_val", id="y_val alone"),
        pytest.param({k: v for k, v in good.items() if "test" not in k}, "it has no array 'x_test'", id="no test"),
        pytest.param({**good, "x": x}, "it holds both x_train and x; give one form", id="two forms"),
        pytest.param({"x": x, "y": y, "split": np.repeat(["train", "training"], 30)},
                     "its split array holds 'training'; each row's split must be train, val or test (or 0, 1, 2)",
                     id="a split name"),
        pytest.param({"x": x, "y": y, "split": np.repeat([0, 3], 30)}, "its split array holds 3", id="a split number"),
        pytest.param({"x": x, "y": y, "split": np.zeros(60)}, "the split array holds float64 values", id="floats"),
        pytest.param({"x": x, "y": y, "split": np.zeros((60, 1), int)}, "its split array is (60, 1); it must be "
                     "(rows,)", id="split shape"),
        pytest.param({"x": x, "y": y, "split": np.repeat(["train", "val"], 30)},
                     "no row is a test row", id="no test rows"),
        pytest.param({**good, "x_val": good["x_val"][:0], "y_val": good["y_val"][:0]},
                     "its val split has no rows", id="empty val"),
        pytest.param({**good, "x_test": np.zeros((30, 4), np.float32)},
                     "its test rows are (4,), its train rows (3,); every split's rows must have one shape",
                     id="row shapes"),
        pytest.param({**images, "x_val": images["x_val"][:, :, :2]},
                     "its val rows are (2, 2, 1), its train rows (2, 3, 1)", id="image shapes"),
        pytest.param({**good, "x_test": np.full((30, 3), np.nan)}, "some features of its test rows are not finite",
                     id="nan"),
        pytest.param({**good, "y_test": np.repeat(["a", "d"], 15)}, "its test rows hold class 'd', which no train "
                     "row has", id="class only in test"),
        pytest.param({**good, "y_val": np.arange(15) % 3}, "its labels are of different kinds (y_train <U1, "
                     "y_val int64, y_test <U1)", id="label kinds"),
        pytest.param({**good, "x_val": good["x_val"][:, 0]}, "x_val must be (rows, features) or (rows, height, "
                     "width, channels) and y_val (rows,); they are (15,) and (15,)", id="x_val rank"),
    ]


@pytest.mark.parametrize(("arrays", "message"), bad_npz_forms())
def test_a_bad_npz_form_fails_in_one_line_naming_the_field_and_what_is_allowed(tmp_path, arrays, message):
    bound = npz_data(tmp_path, arrays)
    for own in (False, True):
        with pytest.raises(ConfigError) as error:
            bound(own_checkpoints=own)
        text = str(error.value)
        assert text.startswith(f"data.path='{tmp_path / 'rows.npz'}' is not allowed: ") and "\n" not in text
        assert message in text


@pytest.mark.parametrize(("config", "cells", "message"), [
    ({"split_column": "group"}, None, "data.split_column='group' is not allowed: {path} has no such column; its "
                                      "columns: a, fold, b, species"),
    ({"split_column": "species"}, None, "data.split_column='species' is not allowed: it is the target column"),
    ({"split_column": "fold", "features": ["a", "fold"]}, None,
     "data.features=['a', 'fold'] is not allowed: 'fold' is not a feature column"),
    ({"split_column": "fold"}, ("train", "valid", "test"),
     "data.split_column='fold' is not allowed: line 5 says 'valid'; each row's split must be train, val or test"),
    ({"split_column": "fold"}, ("train", "val", "val"),
     "data.split_column='fold' is not allowed: no row is a test row"),
])
def test_a_bad_csv_split_column_fails_in_one_line_naming_the_field(tmp_path, config, cells, message):
    path, _, _ = split_csv(tmp_path, cells or ("train", "val", "test"))
    with pytest.raises(ConfigError) as error:
        DATASETS["csv"].bind({"path": path, "target": "species", **config})(own_checkpoints=True)
    assert str(error.value).startswith(message.format(path=path)) and "\n" not in str(error.value)


def test_a_plan_scoring_checkpoint_files_loads_the_rows_as_the_model_saw_them(tmp_path, monkeypatch):
    import keras
    from conftest import compose

    from polyexp.core.settings import plan_from
    from polyexp.keras import CheckpointWindow

    monkeypatch.chdir(tmp_path)
    arrays = explicit_splits(val=False)
    np.savez("rows.npz", **arrays)
    labels = np.searchsorted(["a", "b", "c"], arrays["y_train"])
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(arrays["x_train"], labels, epochs=2, verbose=0, callbacks=[CheckpointWindow("ckpt", 2)])
    own = ["data=npz", "data.path=rows.npz", "trajectory=files", "trajectory.glob=ckpt/*.keras"]

    data = plan_from(compose(own)).load_data()
    np.testing.assert_array_equal(data.x_train, arrays["x_train"])  # not standardised: as the model trained
    assert_rows_of(np.concatenate([data.x_val, data.x_test]), arrays["x_test"])
    trained = plan_from(compose(own[:2])).load_data()  # polyexp trains here: standardised on the training rows
    np.testing.assert_allclose(trained.x_train.mean(axis=0), 0, atol=1e-5)

    np.savez("rows.npz", x=arrays["x_train"], y=arrays["y_train"])
    with pytest.raises(ConfigError, match="cannot know which rows your model trained on"):
        plan_from(compose(own)).load_data()
    assert len(plan_from(compose(own[:2])).load_data().x_train) == 24
