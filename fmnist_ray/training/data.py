"""Fashion-MNIST: find or download it, verify it, load it once as uint8 arrays, and serve it
from the run's device as seeded, shuffled index slices (no DataLoader, no per-sample work)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import FmnistRayError

if TYPE_CHECKING:  # torch is imported where it is used: a driver that only loads never pays for it
    import torch

ENV_VAR = "FMNIST_DATA_DIR"
# name -> (MD5 of the official .gz, MD5 of its unpacked content, shape of the array)
FILES = {
    "train-images-idx3-ubyte": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        (60000, 28, 28),
    ),
    "train-labels-idx1-ubyte": (
        "25c81989df183df01b3e8a0aad5dffbe",
        "9018921c3c673c538a1fc5bad174d6f9",
        (60000,),
    ),
    "t10k-images-idx3-ubyte": (
        "bef4ecab320f06d8554ea6380940ec79",
        "8181f5470baa50b63fa0f6fddb340f0a",
        (10000, 28, 28),
    ),
    "t10k-labels-idx1-ubyte": (
        "bb300cfdad3c16e7a12a480ee83cd310",
        "15d484375f8d13e6eb1aabb0c3f46965",
        (10000,),
    ),
}
HOW_TO_FIX = (
    f"Pass --data-dir DIR (or set {ENV_VAR}) to a folder holding FashionMNIST/raw/ with the four "
    "official files (.gz or unpacked), or run once on a machine with internet to download them."
)


class DataError(FmnistRayError, RuntimeError):
    """Missing or corrupt data, with what is wrong, where we looked and how to fix it."""


def default_cache_dir() -> Path:
    """Per-user cache folder: $XDG_CACHE_HOME/fmnist-ray, else ~/.cache/fmnist-ray."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fmnist-ray"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder to use: the explicit argument, else $FMNIST_DATA_DIR, else the user cache."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return default_cache_dir()


def _raw_folder(root: Path) -> Path | None:
    """Accept the torchvision root, the FashionMNIST folder, or the raw folder itself."""
    for candidate in (root / "FashionMNIST" / "raw", root / "raw", root):
        if all((candidate / n).exists() or (candidate / f"{n}.gz").exists() for n in FILES):
            return candidate
    return None


def _read_idx(raw: Path, name: str) -> np.ndarray:
    """Read one IDX file, the unpacked one if present, else the .gz, checking its official MD5:
    one read and one hash per file, each load (about 0.1 s for all four)."""
    packed_md5, unpacked_md5, shape = FILES[name]
    packed, unpacked = raw / f"{name}.gz", raw / name
    if unpacked.exists():
        content = unpacked.read_bytes()
        fix = f"delete it to read {packed.name}" if packed.exists() else "replace it"
        _check_md5(unpacked, content, unpacked_md5, fix)
    else:
        blob = packed.read_bytes()
        _check_md5(packed, blob, packed_md5, "delete it and download it again")
        content = gzip.decompress(blob)
    header = 4 + 4 * len(shape)  # magic number, then one 4-byte size per dimension
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(shape)


def _check_md5(path: Path, content: bytes, expected: str, fix: str) -> None:
    if hashlib.md5(content).hexdigest() != expected:
        raise DataError(
            f"{path} is corrupt or not Fashion-MNIST (its MD5 differs from the official "
            f"file's): {fix}. {HOW_TO_FIX}"
        )


def _download(root: Path) -> None:
    """Fetch the four files with torchvision into root/FashionMNIST/raw (needs internet)."""
    from torchvision.datasets import FashionMNIST

    try:
        root.mkdir(parents=True, exist_ok=True)
        FashionMNIST(root=str(root), train=True, download=True)
        FashionMNIST(root=str(root), train=False, download=True)
    except Exception as error:  # network, permissions, disk: all end the same way for the user
        reason = " ".join(str(error).split())
        raise DataError(
            f"Fashion-MNIST is not in {root} and downloading it there failed "
            f"({type(error).__name__}: {reason}). {HOW_TO_FIX}"
        ) from None


@dataclass(frozen=True)
class FashionMNIST:
    """The whole dataset as uint8 images [N,28,28] and int64 labels [N]; cheap to `ray.put`.
    `scaled`: the train and test images as DeviceData keeps them on a CPU, when `with_scaled`
    made them (see there)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str = ""
    scaled: tuple[np.ndarray, np.ndarray] | None = None

    def subset(self, train: int, test: int) -> FashionMNIST:
        """The first `train`/`test` examples: small real slices for quick checks."""
        scaled = None if self.scaled is None else (self.scaled[0][:train], self.scaled[1][:test])
        return FashionMNIST(
            self.train_images[:train],
            self.train_labels[:train],
            self.test_images[:test],
            self.test_labels[:test],
            self.source,
            scaled,
        )

    def with_scaled(self) -> FashionMNIST:
        """The same data with its images also scaled to float32 [N,1,28,28] in [0, 1], exactly
        the values `DeviceData` computes (x / 255 in float32). Put in Ray's object store once,
        every CPU trainer on a node reads that one copy in place instead of making its own
        (about 220 MB each for the whole dataset)."""
        train, test = (
            np.divide(images[:, None], np.float32(255.0), dtype=np.float32)
            for images in (self.train_images, self.test_images)
        )
        return dataclasses.replace(self, scaled=(train, test))


def load_fashion_mnist(data_dir: str | os.PathLike | None = None, download: bool = True):
    """Locate (or download), verify and load Fashion-MNIST. Raises DataError with a fix."""
    root = resolve_data_dir(data_dir)
    raw = _raw_folder(root)
    if raw is None:
        if not download:
            raise DataError(
                f"Fashion-MNIST not found in {root} (looked in {root}/FashionMNIST/raw, "
                f"{root}/raw and {root} for {', '.join(FILES)}). {HOW_TO_FIX}"
            )
        if not root.is_dir() and (data_dir or os.environ.get(ENV_VAR)):
            raise DataError(  # a typo must not create folders: only the cache is made on demand
                f"{root}: no such folder. Fashion-MNIST is downloaded into a folder you name only "
                f"when it exists; create it, or leave out --data-dir and {ENV_VAR} to download "
                f"into {default_cache_dir()}."
            )
        _download(root)
        raw = _raw_folder(root)
        if raw is None:
            raise DataError(
                f"download into {root} did not produce the expected files. {HOW_TO_FIX}"
            )
    arrays = {name: _read_idx(raw, name) for name in FILES}
    return FashionMNIST(
        train_images=arrays["train-images-idx3-ubyte"],
        train_labels=arrays["train-labels-idx1-ubyte"].astype(np.int64),
        test_images=arrays["t10k-images-idx3-ubyte"],
        test_labels=arrays["t10k-labels-idx1-ubyte"].astype(np.int64),
        source=str(raw),
    )


def canonical(device: torch.device | str) -> torch.device:
    """`device` with its index: "cuda" and "cuda:0" are one device, and must compare equal, or
    the data would be copied to the device it is already on."""
    import torch

    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


class DeviceData:
    """The dataset on one device, scaled to [0, 1] as float32 [N,1,28,28] (as ToTensor does)."""

    def __init__(self, data: FashionMNIST, device: torch.device):
        self.device = device = canonical(device)
        if data.scaled is not None and device.type == "cpu":  # read in place, never written
            self.train_x, self.test_x = (_in_place(images) for images in data.scaled)
        else:
            self.train_x = _to_float_images(data.train_images, device)
            self.test_x = _to_float_images(data.test_images, device)
        self.train_y = _to_tensor(data.train_labels, device)
        self.test_y = _to_tensor(data.test_labels, device)

    @property
    def train_size(self) -> int:
        return len(self.train_y)

    def to(self, device: torch.device) -> DeviceData:
        """The same data on `device` (itself when it is already there)."""
        device = canonical(device)
        if self.device == device:
            return self
        moved = object.__new__(DeviceData)
        moved.device = device
        for name in ("train_x", "train_y", "test_x", "test_y"):
            setattr(moved, name, getattr(self, name).to(device))
        return moved

    def train_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled batches; the last one may be short (like DataLoader)."""
        import torch

        order = torch.randperm(self.train_size, generator=generator).to(self.device)
        for start in range(0, self.train_size, batch_size):
            index = order[start : start + batch_size]
            yield self.train_x[index], self.train_y[index]

    def test_batches(self, batch_size: int = 1000) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The test set in order, never shuffled."""
        for start in range(0, len(self.test_y), batch_size):
            yield self.test_x[start : start + batch_size], self.test_y[start : start + batch_size]


def _to_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    import torch

    # Copy: arrays from Ray's object store are read-only, and torch wants writable memory.
    return torch.from_numpy(np.array(array, copy=True)).to(device)


def _in_place(array: np.ndarray) -> torch.Tensor:
    """A tensor over `array`'s memory (Ray's object store: read-only, shared by the node's
    trainers). Batches are gathered copies, so nothing writes to it."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def _to_float_images(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return _to_tensor(images, device).unsqueeze(1).float().div_(255.0)
