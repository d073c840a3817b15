"""The datamodule: shapes, ranges, labels, splits, folders, caches and missing-data errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.utils import save_image

from gan_lab.data import GANDataModule
from gan_lab.data.sources import CIFAR10, MNIST, ImageFolder, SyntheticShapes
from gan_lab.errors import ConfigError, DataNotFoundError
from tests.conftest import CIFAR_FOLDER, DATA_DIR, requires_cifar, requires_mnist

MNIST_TRAIN_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def first_batch(dm: GANDataModule) -> tuple[torch.Tensor, torch.Tensor]:
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    return dm.on_after_batch_transfer(batch, 0)


@requires_mnist
def test_mnist_splits_labels_and_range(tmp_path: Path) -> None:
    dm = GANDataModule(
        MNIST(),
        data_dir=str(DATA_DIR),
        image_size=32,
        channels=1,
        batch_size=50,
        cache_dir=str(tmp_path),
    )
    images, labels = first_batch(dm)
    assert images.shape == (50, 1, 32, 32) and images.dtype == torch.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert images.min() == -1.0  # MNIST background is black
    assert len(dm.train_set) == 60000 and len(dm.heldout_images()) == 10000
    assert torch.bincount(dm.train_set.labels).tolist() == MNIST_TRAIN_CLASS_COUNTS
    assert dm.num_classes == 10 and labels.dtype == torch.long


@requires_mnist
def test_cache_gives_identical_tensors(tmp_path: Path) -> None:
    kwargs = dict(data_dir=str(DATA_DIR), image_size=28, channels=3, cache_dir=str(tmp_path))
    first = GANDataModule(MNIST(), **kwargs).load_split("test")
    assert len(list(tmp_path.glob("mnist-test-28px-3ch-*.pt"))) == 1
    second = GANDataModule(MNIST(), **kwargs).load_split("test")
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert first.images.shape[1] == 3  # grey repeated into RGB


@requires_cifar
def test_cifar10_image_folder_is_cifar10(tmp_path: Path) -> None:
    dm = GANDataModule(CIFAR10(), path=str(CIFAR_FOLDER), image_size=32, channels=3, cache_dir=None)
    held = dm.load_split("test")
    assert held.images.shape == (10000, 3, 32, 32)
    assert held.class_names[:3] == ["airplane", "automobile", "bird"]
    assert torch.bincount(held.labels).tolist() == [1000] * 10


def write_folder(root: Path, classes: dict[str, int], size: int = 20) -> None:
    g = torch.Generator().manual_seed(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            save_image(torch.rand(3, size, size + 6, generator=g), root / name / f"{i:03d}.png")


def test_image_folder_with_classes_and_a_held_out_fraction(tmp_path: Path) -> None:
    write_folder(tmp_path / "imgs", {"cats": 12, "dogs": 8})
    dm = GANDataModule(
        ImageFolder(),
        path=str(tmp_path / "imgs"),
        image_size=16,
        channels=3,
        batch_size=4,
        heldout_fraction=0.25,
    )
    images, _ = first_batch(dm)
    assert images.shape == (4, 3, 16, 16)  # center-cropped to square, then resized
    assert len(dm.train_set) == 15 and len(dm.heldout_images()) == 5
    assert dm.class_names == ["cats", "dogs"]
    all_labels = torch.cat([dm.train_set.labels, dm.heldout_set.labels])
    assert torch.bincount(all_labels).tolist() == [12, 8]


def test_flat_image_folder_in_grey(tmp_path: Path) -> None:
    write_folder(tmp_path, {"flat": 10})
    dm = GANDataModule(
        ImageFolder(), path=str(tmp_path / "flat"), image_size=8, channels=1, batch_size=2
    )
    images, labels = first_batch(dm)
    assert images.shape == (2, 1, 8, 8) and set(labels.tolist()) == {0}


def test_missing_folder_names_the_path_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    dm = GANDataModule(CIFAR10(), path=str(missing), image_size=32, channels=3)
    with pytest.raises(DataNotFoundError, match=r"data\.path=.*nope.*is not a directory"):
        dm.prepare_data()


def test_mnist_missing_offline_says_how_to_point_at_a_copy(tmp_path: Path, monkeypatch) -> None:
    from torchvision import datasets

    def offline(self) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(datasets.MNIST, "download", offline)
    dm = GANDataModule(MNIST(), data_dir=str(tmp_path), image_size=28, channels=1)
    with pytest.raises(DataNotFoundError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert str(tmp_path) in message and "GAN_DATA_DIR" in message and "paths.data_dir" in message


def test_image_folder_source_needs_a_path() -> None:
    with pytest.raises(ConfigError, match=r"data\.path=None.*data=image_folder needs data\.path"):
        GANDataModule(ImageFolder(), path=None)


def test_synthetic_source_is_deterministic_and_labelled() -> None:
    kwargs = dict(image_size=16, channels=3, batch_size=8)
    a = GANDataModule(SyntheticShapes(64), **kwargs)
    b = GANDataModule(SyntheticShapes(64), **kwargs)
    a.setup(), b.setup()
    assert torch.equal(a.train_set.images, b.train_set.images)
    assert a.num_classes == 10 and len(a.heldout_images()) == 16


def test_hflip_only_flips_during_training() -> None:
    dm = GANDataModule(SyntheticShapes(64), image_size=16, channels=3, batch_size=64, hflip=True)
    dm.setup()
    raw = dm.train_set.images[:64], dm.train_set.labels[:64]
    plain, _ = dm.on_after_batch_transfer(raw, 0)  # no trainer: not training
    assert torch.equal(plain, raw[0].float() / 127.5 - 1)
