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
