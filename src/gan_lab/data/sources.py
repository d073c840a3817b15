"""Where images come from: torchvision MNIST / CIFAR-10, image folders, synthetic shapes.

A dataset is one :class:`DataSource` subclass here (or in any importable module) and one YAML in
``configs/data/source/`` that names it by ``_target_``; the datamodule builds whatever it names.
Every source returns an :class:`ImageSet` of uint8 NCHW images at its native size; resizing and
channel conversion happen once, in :mod:`gan_lab.data.transforms`.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image, read_file

from gan_lab.errors import ConfigError, DataNotFoundError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
SPLITS = ("train", "test")


@dataclass
class ImageSet:
    """Decoded images of one split, kept as uint8 so a whole dataset fits in memory."""

    images: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor  # int64, (N,)
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 NCHW, got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.class_names)

    def to(self, device: torch.device | str) -> ImageSet:
        return ImageSet(self.images.to(device), self.labels.to(device), self.class_names)


class DataSource(ABC):
    """One dataset: its train / test splits as uint8 images with labels."""

    # decoded images are worth caching on disk (False for images made on the fly)
    cacheable: bool = True
    # the images come only from data.path (an image folder); other sources may be replaced by one
    needs_path: bool = False

    def __init__(self, name: str | None = None) -> None:
        # names caches, metric reference statistics and the in-domain classifier asset
        stem = type(self).__name__
        self.name = name or re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", stem).lower()

    @abstractmethod
    def load(self, split: str, root: Path, image_size: int, channels: int) -> ImageSet:
        """The split (``train`` / ``test``) at the source's native size; ``root`` is data_dir.

        ``image_size`` and ``channels`` are what the model wants: a source that makes images
        (rather than reading them) makes them at that shape.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class MNIST(DataSource):
    """torchvision MNIST (28x28 grey), downloaded into data_dir when missing."""

    def load(self, split: str, root: Path, image_size: int, channels: int) -> ImageSet:
        return load_mnist(root, split)


class CIFAR10(DataSource):
    """torchvision CIFAR-10 (32x32 RGB), downloaded into data_dir when missing."""

    def load(self, split: str, root: Path, image_size: int, channels: int) -> ImageSet:
        return load_torchvision_cifar10(root, split)


class ImageFolder(DataSource):
    """Any folder of images (data.path): the datamodule lists, splits and decodes it."""

    needs_path = True

    def load(self, split: str, root: Path, image_size: int, channels: int) -> ImageSet:
        raise ConfigError("data.path", None, f"data={self.name} needs data.path=<folder of images>")


class SyntheticShapes(DataSource):
    """Coloured discs made on the fly (:func:`synthetic_shapes`): needs no files at all."""

    cacheable = False

    def __init__(self, num_samples: int = 2048, name: str | None = "synthetic") -> None:
        super().__init__(name)
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ConfigError("data.source.num_samples", num_samples, "must be a positive integer")
        self.num_samples = num_samples

    def load(self, split: str, root: Path, image_size: int, channels: int) -> ImageSet:
        n = self.num_samples if split == "train" else max(self.num_samples // 4, 1)
        return synthetic_shapes(split, n, image_size, channels)


def _missing_torchvision_dataset(name: str, root: Path, err: Exception) -> DataNotFoundError:
    return DataNotFoundError(
        f"{name} was not found under {root} and could not be downloaded ({type(err).__name__}: {err}). "
        f"Point the data root at a copy with GAN_DATA_DIR=<dir> or paths.data_dir=<dir>"
        + (", or use an image-folder copy with data.path=<folder>" if name == "CIFAR-10" else "")
        + "."
    )


def load_mnist(root: Path, split: str) -> ImageSet:
    from torchvision.datasets import MNIST

    try:
        ds = MNIST(root=str(root), train=split == "train", download=True)
    except Exception as err:  # torchvision raises RuntimeError / URLError offline
        raise _missing_torchvision_dataset("MNIST", root, err) from err
    return ImageSet(ds.data.unsqueeze(1).contiguous(), ds.targets.long(), list(ds.classes))


def load_torchvision_cifar10(root: Path, split: str) -> ImageSet:
    from torchvision.datasets import CIFAR10

    try:
        ds = CIFAR10(root=str(root), train=split == "train", download=True)
    except Exception as err:
        raise _missing_torchvision_dataset("CIFAR-10", root, err) from err
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.tensor(ds.targets, dtype=torch.long), list(ds.classes))


def list_image_folder(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    """Files and labels in ImageFolder layout (one sub-folder per class), or a flat folder (label 0)."""
    if not folder.is_dir():
        raise DataNotFoundError(
            f"data.path={str(folder)!r} is not a directory. Pass an existing image folder "
            f"(one sub-folder per class, or train/ and test/ splits)."
        )
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir())
    files: list[Path] = []
    labels: list[int] = []
    if class_dirs:
        for label, class_dir in enumerate(class_dirs):
            for dirpath, _, names in sorted(os.walk(class_dir)):
                for name in sorted(names):
                    if name.lower().endswith(IMAGE_EXTENSIONS):
                        files.append(Path(dirpath) / name)
                        labels.append(label)
        class_names = [p.name for p in class_dirs]
    else:
        files = sorted(p for p in folder.iterdir() if p.name.lower().endswith(IMAGE_EXTENSIONS))
        labels = [0] * len(files)
        class_names = [folder.name]
    if not files:
        raise DataNotFoundError(
            f"data.path={str(folder)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}). "
            f"Check the path or point data.path at a folder of images."
        )
    return files, labels, class_names


def _center_square(image: torch.Tensor) -> torch.Tensor:
    h, w = image.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[..., top : top + side, left : left + side]


def decode_images(
    files: list[Path],
    channels: int,
    resize: Callable[[torch.Tensor], torch.Tensor],
    workers: int = 4,
) -> torch.Tensor:
    """Decode, center-crop and resize files into one uint8 tensor; threads overlap file IO and decoding."""

    def load(path: Path) -> torch.Tensor:
        return resize(decode_one(path, channels))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return torch.stack(list(pool.map(load, files, chunksize=256)))


def decode_one(path: Path, channels: int) -> torch.Tensor:
    """One file as a center-cropped square uint8 CHW tensor (grey or RGB)."""
    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    try:
        return _center_square(decode_image(read_file(str(path)), mode=mode))
    except RuntimeError as err:
        raise DataNotFoundError(f"cannot decode image {path}: {err}") from err


def folder_splits(folder: Path) -> dict[str, Path] | None:
    """A folder with train/ and test/ (or val/) sub-folders already carries its held-out split."""
    train = folder / "train"
    for held_out in ("test", "val"):
        if train.is_dir() and (folder / held_out).is_dir():
            return {"train": train, "test": folder / held_out}
    return None


def synthetic_shapes(
    split: str, num_samples: int, image_size: int, channels: int, num_classes: int = 10
) -> ImageSet:
    """Deterministic coloured discs on a dark background: a stand-in dataset when no real data exists.

    The class sets the disc's position on a ring, so a classifier (and a conditional GAN) has
    something learnable.
    """
    g = torch.Generator().manual_seed(1234 + SPLITS.index(split))
    labels = torch.randint(0, num_classes, (num_samples,), generator=g)
    angle = labels.float() * (2 * torch.pi / num_classes)
    centre = 0.5 + 0.28 * torch.stack([angle.cos(), angle.sin()], dim=1)
    centre = centre + 0.04 * torch.randn(num_samples, 2, generator=g)
    radius = 0.12 + 0.05 * torch.rand(num_samples, generator=g)
    coords = (torch.arange(image_size).float() + 0.5) / image_size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    dist2 = (xx[None] - centre[:, 0, None, None]) ** 2 + (yy[None] - centre[:, 1, None, None]) ** 2
    disc = (dist2 < radius[:, None, None] ** 2).float()
    colour = 0.4 + 0.6 * torch.rand(num_samples, channels, generator=g)
    images = disc[:, None] * colour[:, :, None, None] + 0.05 * torch.rand(
        num_samples, channels, image_size, image_size, generator=g
    )
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return ImageSet(images, labels, [f"disc_{k}" for k in range(num_classes)])
