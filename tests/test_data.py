"""Data plugins: the seed's blobs split, standardised real data sets, clear errors for bad splits."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from polyexp.data import DATASETS, Dataset, check_dataset
from polyexp.errors import PluginError


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
    raw = DATASETS[name].bind({"standardize": False})()
    assert not np.allclose(raw.x_train.mean(axis=0), 0, atol=1e-3)


@pytest.mark.parametrize("name", ["moons", "circles"])
def test_toy_generators_have_two_classes(name):
    data = DATASETS[name].bind({"n_samples": 300, "n_train": 50})()
    assert (len(data.x_train), len(data.x_test), len(data.x_val), data.num_classes) == (50, 250, 1000, 2)


def test_check_dataset_rejects_what_training_cannot_use():
    x, y = np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1], np.int32)
    with pytest.raises(PluginError, match=r"returned tuple; it must return a polyexp\.data\.Dataset"):
        check_dataset((x, y), "data plugin 'p'")
    with pytest.raises(PluginError, match="empty test split"):
        check_dataset(Dataset(x, y, x, y, x[:0], y[:0]), "data plugin 'p'")
    with pytest.raises(PluginError, match="empty val split"):
        check_dataset(Dataset(x, y, x[:0], y[:0], x, y), "data plugin 'p'")
    with pytest.raises(PluginError, match="the training split lacks class 2"):
        check_dataset(Dataset(x, y, x, y, x, y + 1), "data plugin 'p'")
    with pytest.raises(PluginError, match="non-finite features in the train split"):
        check_dataset(Dataset(x + np.nan, y, x, y, x, y), "data plugin 'p'")
    with pytest.raises(PluginError, match="x_val has 3 features, x_train 2"):
        check_dataset(Dataset(x, y, np.zeros((4, 3), np.float32), y, x, y), "data plugin 'p'")
