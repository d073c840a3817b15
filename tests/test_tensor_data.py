"""The fast data path gives the classic torchvision path's images, in an exact, reproducible order."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torchvision.io import write_png

from gan_lab.data import GANDataModule
from gan_lab.data.batch_sampler import EpochBatchSampler
from gan_lab.data.folder_data import ImageFileDataset
from gan_lab.data.sources import MNIST, ImageFolder, SyntheticShapes
from gan_lab.data.tensor_loader import TensorImageDataset
from gan_lab.errors import ConfigError
from tests.conftest import DATA_DIR, requires_mnist


def _epoch(sampler: EpochBatchSampler, epoch: int) -> list[torch.Tensor]:
    sampler.set_epoch(epoch)
    return list(sampler)


def _write_folder(root: Path, sizes: list[tuple[int, int]], classes: int = 2) -> list[torch.Tensor]:
    """PNG files (lossless, so every decoder must agree) in one sub-folder per class."""
    g = torch.Generator().manual_seed(0)
    written = []
    for i, (h, w) in enumerate(sizes):
        image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        write_png(image, str(folder / f"img_{i:03d}.png"))
        written.append(image)
    return written


def _folder_datamodule(root: Path, **kwargs: object) -> GANDataModule:
    """A datamodule over a folder of 16x16 RGB test images."""
    return GANDataModule(source=ImageFolder(), path=str(root), image_size=16, channels=3, **kwargs)


def _all_batches(dm: GANDataModule, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = dm.train_dataloader()
    assert dm.sampler is not None
    dm.sampler.set_epoch(epoch)
    return [dm.on_after_batch_transfer(batch, 0) for batch in loader]


def test_every_epoch_covers_each_image_at_most_once_and_drops_only_the_ragged_tail() -> None:
    n, batch = 103, 10
    sampler = EpochBatchSampler(n, batch, seed=3)
    for epoch in range(3):
        batches = _epoch(sampler, epoch)
        assert len(batches) == len(sampler) == n // batch
        assert all(len(b) == batch for b in batches)
        seen = torch.cat(batches)
        assert len(set(seen.tolist())) == len(seen) == 100  # no repeats; only 3 images dropped
    # Across epochs the dropped tail changes, so every image is seen eventually.
    covered = {i for epoch in range(5) for b in _epoch(sampler, epoch) for i in b.tolist()}
    assert covered == set(range(n))


def test_order_is_reproducible_from_seed_and_epoch_and_changes_between_epochs() -> None:
    a, b = EpochBatchSampler(64, 8, seed=7), EpochBatchSampler(64, 8, seed=7)
    first = torch.cat(_epoch(a, 0))
    assert torch.equal(first, torch.cat(_epoch(b, 0)))
    assert not torch.equal(first, torch.cat(_epoch(a, 1)))
    assert not torch.equal(first, torch.cat(_epoch(EpochBatchSampler(64, 8, seed=8), 0)))
    assert torch.equal(
        torch.cat(_epoch(EpochBatchSampler(64, 8, shuffle=False), 0)), torch.arange(64)
    )


def test_ddp_shards_are_disjoint_and_together_equal_the_single_process_global_batch() -> None:
    n, per_rank, world = 100, 4, 3
    single = _epoch(EpochBatchSampler(n, per_rank * world, seed=1), 2)
    ranks = [
        _epoch(EpochBatchSampler(n, per_rank, seed=1, rank=r, world_size=world), 2)
        for r in range(world)
    ]
    assert all(len(r) == len(single) for r in ranks)
    for step, global_batch in enumerate(single):
        shards = [r[step] for r in ranks]
        assert torch.equal(torch.cat(shards), global_batch)
    per_rank_sets = [set(torch.cat(r).tolist()) for r in ranks]
    for i in range(world):
        for j in range(i + 1, world):
            assert not per_rank_sets[i] & per_rank_sets[j]


def test_tensor_dataset_gathers_a_whole_batch_with_its_labels() -> None:
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    ds = TensorImageDataset(images, torch.arange(10) * 10)
    x, y = ds[torch.tensor([7, 2, 5])]
    assert x[:, 0, 0, 0].tolist() == [7, 2, 5] and y.tolist() == [70, 20, 50]


def test_folder_images_and_labels_match_torchvision_image_folder(tmp_path: Path) -> None:
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import CenterCrop, Compose, PILToTensor

    _write_folder(tmp_path / "imgs", [(16, 16), (20, 16), (16, 24), (16, 16)] * 3)
    dm = _folder_datamodule(tmp_path / "imgs", heldout_fraction=0.25)
    classic = ImageFolder(
        str(tmp_path / "imgs"), transform=Compose([CenterCrop(16), PILToTensor()])
    )
    by_file = {
        Path(p).name: (classic[i][0], classic[i][1]) for i, (p, _) in enumerate(classic.samples)
    }
    files, _, _ = dm._folder_split_files("train")
    dm.setup()
    assert dm.train_set is not None and len(dm.train_set) == len(files) == 9
    for k, path in enumerate(files):
        image, label = by_file[path.name]
        assert torch.equal(dm.train_set.images[k], image) and int(dm.train_set.labels[k]) == label


@requires_mnist
def test_mnist_batches_equal_torchvision_totensor_normalize() -> None:
    from torchvision import datasets
    from torchvision.transforms import Compose, Normalize, ToTensor

    assert DATA_DIR is not None
    dm = GANDataModule(
        source=MNIST(),
        data_dir=str(DATA_DIR),
        image_size=28,
        channels=1,
        batch_size=32,
        cache_dir=os.environ.get("GAN_CACHE_DIR"),
    )
    classic = datasets.MNIST(
        str(DATA_DIR), train=True, transform=Compose([ToTensor(), Normalize([0.5], [0.5])])
    )
    loader = dm.train_dataloader()
    index = next(iter(dm.sampler))
    images, labels = dm.on_after_batch_transfer(next(iter(loader)), 0)
    expected = torch.stack([classic[i][0] for i in index.tolist()])
    assert images.dtype == torch.float32 and images.shape == (32, 1, 28, 28)
    torch.testing.assert_close(images, expected, atol=1e-6, rtol=0)
    assert labels.tolist() == [classic[i][1] for i in index.tolist()]
    assert len(dm.train_set) == len(classic) == 60000


def test_large_folders_stream_per_sample_with_the_same_batches_as_in_memory(tmp_path: Path) -> None:
    _write_folder(tmp_path / "imgs", [(24, 24), (30, 24), (24, 40)] * 6, classes=3)
    common = dict(
        source=ImageFolder(),
        path=str(tmp_path / "imgs"),
        image_size=16,
        channels=3,
        batch_size=4,
        hflip=False,
        seed=5,
    )
    in_memory = GANDataModule(**common)
    per_sample = GANDataModule(**common, in_memory_max_images=10)
    per_sample.prepare_data()
    per_sample.setup()
    assert in_memory.streams_from_files() is False and per_sample.streams_from_files() is True
    assert isinstance(per_sample.train_files, ImageFileDataset) and per_sample.train_set is None
    assert per_sample.class_names == in_memory.class_names == ["class_0", "class_1", "class_2"]
    for epoch in (0, 1):
        fast, slow = _all_batches(in_memory, epoch), _all_batches(per_sample, epoch)
        assert len(fast) == len(slow) == 17 // 4  # 18 images, 1 held out, batch 4
        for (x_fast, y_fast), (x_slow, y_slow) in zip(fast, slow):
            assert torch.equal(x_fast, x_slow) and torch.equal(y_fast, y_slow)


def test_negative_in_memory_threshold_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"data\.in_memory_max_images"):
        GANDataModule(source=SyntheticShapes(), in_memory_max_images=-1)


def _attach_device(dm: GANDataModule, device: str) -> None:
    """What Lightning's trainer gives the datamodule: rank, world size and the strategy's device."""
    strategy = SimpleNamespace(root_device=torch.device(device))
    dm.trainer = SimpleNamespace(global_rank=0, world_size=1, strategy=strategy, training=True)


def test_on_device_gathers_batches_where_the_trainer_runs_without_pinning() -> None:
    # "meta" stands in for a GPU on a CPU-only machine: a batch that went through host memory,
    # or a pin_memory call on it, would not come out on the meta device
    dm = GANDataModule(source=SyntheticShapes(), batch_size=8, on_device=True, pin_memory=True)
    _attach_device(dm, "meta")
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.device.type == labels.device.type == "meta"
    assert images.dtype == torch.uint8 and tuple(images.shape) == (8, 1, 32, 32)
    assert dm.heldout_images(4).images.device.type == "cpu"  # metrics read held-out images on host


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_device_batches_on_the_gpu_equal_the_host_batches() -> None:
    common = dict(source=SyntheticShapes(), batch_size=16, channels=3, hflip=False, seed=3)
    host, gpu = GANDataModule(**common), GANDataModule(**common, on_device=True)
    _attach_device(host, "cpu")
    _attach_device(gpu, "cuda")
    host.setup("fit")
    gpu.setup("fit")
    for epoch in (0, 1):
        on_host, on_gpu = _all_batches(host, epoch), _all_batches(gpu, epoch)
        assert len(on_host) == len(on_gpu) > 0
        for (x_host, y_host), (x_gpu, y_gpu) in zip(on_host, on_gpu):
            # the same uint8 images; the GPU's [-1, 1] conversion may round the last bit differently
            assert x_gpu.is_cuda and torch.allclose(x_gpu.cpu(), x_host, rtol=0, atol=1e-6)
            assert torch.equal(y_gpu.cpu(), y_host)


def test_on_device_with_loader_workers_is_a_config_error_on_an_accelerator_only() -> None:
    on_cpu = GANDataModule(source=SyntheticShapes(), on_device=True, num_workers=2)
    _attach_device(on_cpu, "cpu")
    on_cpu.setup("fit")  # a no-op on CPU: workers keep working
    assert on_cpu.train_set is not None and on_cpu.train_set.images.device.type == "cpu"
    on_gpu = GANDataModule(source=SyntheticShapes(), on_device=True, num_workers=2)
    _attach_device(on_gpu, "meta")
    with pytest.raises(ConfigError, match=r"data\.num_workers.*data\.on_device"):
        on_gpu.setup("fit")


def test_on_device_with_a_folder_streamed_per_sample_is_a_config_error(tmp_path: Path) -> None:
    _write_folder(tmp_path / "imgs", [(16, 16)] * 6)
    dm = _folder_datamodule(tmp_path / "imgs", batch_size=2, in_memory_max_images=2, on_device=True)
    _attach_device(dm, "meta")
    with pytest.raises(ConfigError, match=r"data\.on_device.*in_memory_max_images"):
        dm.setup("fit")
