"""Shared fixtures: the real Fashion-MNIST (from $FMNIST_DATA_DIR or ../shared/data), loaded once,
and small real slices of it for quick training checks."""

import os
from pathlib import Path

import pytest

from fmnist_ray.data import load_fashion_mnist

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FMNIST_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.exists():
        pytest.fail(f"Fashion-MNIST not found at {DATA_DIR}; set FMNIST_DATA_DIR")
    return DATA_DIR


@pytest.fixture(scope="session")
def fmnist(data_dir):
    return load_fashion_mnist(data_dir, download=False)


@pytest.fixture(scope="session")
def small(fmnist):
    """2,000 training and 500 test images: enough to see learning in a second."""
    return fmnist.subset(train=2000, test=500)
