import pickle

import numpy as np
import pytest

from datasets import DataError, get_dataset
from tests.conftest import write_cifar10


def test_reads_the_official_layout(cifar_dir):
    splits = get_dataset("cifar10").load(cifar_dir)
    assert splits.train.images.shape == (100, 3, 32, 32) and splits.train.images.dtype == np.uint8
    assert splits.test.images.shape == (20, 3, 32, 32)
    assert splits.val is None and splits.classes[0] == "airplane" and len(splits.classes) == 10
    with open(cifar_dir / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        first = pickle.load(f)
    # rows are R, G, B planes of 1024 pixels each, as the official format documents
    assert np.array_equal(splits.train.images[0].reshape(-1), first["data"][0])
    assert splits.train.labels[:20].tolist() == first["labels"]


def test_reads_copies_pickled_with_bytes_keys(tmp_path):
    splits = get_dataset("cifar10").load(write_cifar10(tmp_path, bytes_keys=True))
    assert splits.train.images.shape == (100, 3, 32, 32) and splits.classes[-1] == "truck"


def test_prepare_accepts_a_complete_copy_without_network(cifar_dir, monkeypatch):
    import torchvision.datasets.utils

    def no_network(*args, **kwargs):
        raise AssertionError("a complete copy must not be downloaded again")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", no_network)
    get_dataset("cifar10").prepare(cifar_dir)


def test_a_truncated_batch_is_named(cifar_dir):
    path = cifar_dir / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="data_batch_3"):
        get_dataset("cifar10").load(cifar_dir)


def test_prepare_stops_a_corrupt_batch_before_any_trial(cifar_dir):
    (cifar_dir / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_2"):
        get_dataset("cifar10").prepare(cifar_dir)


def test_a_missing_batch_is_named(tmp_path):
    root = write_cifar10(tmp_path)
    (root / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match="test_batch"):
        get_dataset("cifar10").load(root)


def test_digits_split_is_fixed_and_stratified():
    a, b = get_dataset("digits").load(None), get_dataset("digits").load(None)
    assert np.array_equal(a.test.images, b.test.images)
    assert len(a.train.labels) + len(a.val.labels) + len(a.test.labels) == 1797
    assert np.bincount(a.test.labels).min() >= 30  # every digit well represented in test
    assert a.train.images.max() == 255 and a.train.images.shape[1:] == (1, 8, 8)
