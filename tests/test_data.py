"""Data: found in a read-only folder, verified, loaded as uint8; clear errors when it is not."""

import gzip
import shutil

import numpy as np
import pytest
import torch

from fmnist_ray.training.data import (
    ENV_VAR,
    DataError,
    DeviceData,
    load_fashion_mnist,
    resolve_data_dir,
)


def test_loads_the_real_dataset(fmnist):
    assert fmnist.train_images.shape == (60000, 28, 28)
    assert fmnist.train_images.dtype == np.uint8
    assert fmnist.test_images.shape == (10000, 28, 28)
    assert fmnist.train_labels.dtype == np.int64 and set(np.unique(fmnist.test_labels)) == set(
        range(10)
    )
    # The pixel mean/std of the training set on [0, 1] (0.2860/0.3530, docs/study.md).
    scaled = fmnist.train_images / 255.0
    assert scaled.mean() == pytest.approx(0.2860, abs=1e-4)
    assert scaled.std() == pytest.approx(0.3530, abs=1e-4)


def test_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "opt") == tmp_path / "opt"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir(None) == tmp_path / "cache" / "fmnist-ray"


def test_env_var_is_used(data_dir, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(data_dir))
    assert load_fashion_mnist(None, download=False).train_images.shape[0] == 60000


def copy_raw(data_dir, target, suffix):
    raw = target / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (data_dir / "FashionMNIST" / "raw").glob(f"*{suffix}"):
        shutil.copy(f, raw / f.name)
    return raw


def test_gz_only_folder_works(data_dir, tmp_path, fmnist):
    copy_raw(data_dir, tmp_path, ".gz")
    data = load_fashion_mnist(tmp_path, download=False)
    assert np.array_equal(data.test_images, fmnist.test_images)


def test_corrupt_gz_is_detected(data_dir, tmp_path):
    raw = copy_raw(data_dir, tmp_path, ".gz")
    blob = bytearray((raw / "t10k-labels-idx1-ubyte.gz").read_bytes())
    blob[100] ^= 0xFF
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz is corrupt .*MD5"):
        load_fashion_mnist(tmp_path, download=False)


def test_truncated_unpacked_file_is_detected(data_dir, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
        src = next((data_dir / "FashionMNIST" / "raw").glob(f"{name}-idx?-ubyte.gz"))
        (raw / src.stem).write_bytes(gzip.decompress(src.read_bytes()))
    (raw / "t10k-images-idx3-ubyte").write_bytes((raw / "t10k-images-idx3-ubyte").read_bytes()[:-5])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte is corrupt"):
        load_fashion_mnist(tmp_path, download=False)


def test_an_unpacked_file_is_checked_by_md5_not_only_by_size(data_dir, tmp_path):
    raw = copy_raw(data_dir, tmp_path, "")  # .gz and unpacked, as in the shared copy
    image = bytearray((raw / "train-images-idx3-ubyte").read_bytes())
    image[5000] ^= 0x01  # one pixel: header and size still right
    (raw / "train-images-idx3-ubyte").write_bytes(bytes(image))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is corrupt .*MD5.*delete it"):
        load_fashion_mnist(tmp_path, download=False)
    (raw / "train-images-idx3-ubyte").unlink()  # the fix the error gives: the .gz is read
    assert load_fashion_mnist(tmp_path, download=False).train_images.shape == (60000, 28, 28)


@pytest.mark.parametrize("named_by", ["argument", "environment"])
def test_a_named_folder_that_does_not_exist_is_never_created(tmp_path, monkeypatch, named_by):
    downloads = []
    monkeypatch.setattr("fmnist_ray.training.data._download", downloads.append)
    typo = tmp_path / "shraed" / "data"
    if named_by == "environment":
        monkeypatch.setenv(ENV_VAR, str(typo))
    with pytest.raises(DataError, match="no such folder") as info:
        load_fashion_mnist(typo if named_by == "argument" else None, download=True)
    assert downloads == []
    assert not (tmp_path / "shraed").exists()
    assert "leave out --data-dir" in str(info.value)


def test_the_cache_is_downloaded_into_and_an_existing_named_folder_too(tmp_path, monkeypatch):
    downloads = []
    monkeypatch.setattr("fmnist_ray.training.data._download", downloads.append)
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for named in (None, tmp_path):  # the cache, then a folder that exists
        with pytest.raises(DataError, match="did not produce the expected files"):
            load_fashion_mnist(named, download=True)
    assert downloads == [tmp_path / "cache" / "fmnist-ray", tmp_path]


def test_missing_data_says_where_it_looked_and_how_to_fix(tmp_path):
    with pytest.raises(DataError) as info:
        load_fashion_mnist(tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert "not found in" in message
    assert str(tmp_path / "nowhere") in message
    assert "--data-dir" in message
    assert ENV_VAR in message


def test_device_batches_cover_the_epoch_once(small):
    device_data = DeviceData(small, torch.device("cpu"))
    assert device_data.train_x.dtype == torch.float32
    assert device_data.train_x.max() <= 1.0
    generator = torch.Generator().manual_seed(0)
    sizes, labels = [], []
    for _x, y in device_data.train_batches(300, generator):
        sizes.append(len(y))
        labels.append(y)
    assert sizes == [300] * 6 + [200]  # the last batch is short, like DataLoader
    assert sorted(torch.cat(labels).tolist()) == sorted(small.train_labels.tolist())
    # Reshuffled every epoch, reproducibly from the seed.
    first = next(device_data.train_batches(300, torch.Generator().manual_seed(0)))[1]
    again = next(device_data.train_batches(300, torch.Generator().manual_seed(0)))[1]
    second_epoch = next(device_data.train_batches(300, generator))[1]
    assert torch.equal(first, again)
    assert not torch.equal(first, second_epoch)


def test_scaled_images_are_exactly_what_device_data_computes(small):
    """The images the driver scales once for CPU trainers (`with_scaled`) are bit for bit the
    ones DeviceData makes from uint8, for every pixel value: runs train exactly as before."""
    every = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    labels = np.zeros(1, np.int64)
    one = type(small)(every, labels, every, labels)
    ours = DeviceData(one, torch.device("cpu")).train_x
    scaled = DeviceData(one.with_scaled(), torch.device("cpu")).train_x
    assert ours.dtype == scaled.dtype == torch.float32
    assert torch.equal(ours, scaled)
    whole = DeviceData(small, torch.device("cpu"))
    in_place = DeviceData(small.with_scaled(), torch.device("cpu"))
    assert torch.equal(whole.train_x, in_place.train_x)
    assert torch.equal(whole.test_x, in_place.test_x)
    assert torch.equal(whole.train_y, in_place.train_y)
