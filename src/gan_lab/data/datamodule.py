"""The LightningDataModule: loads its source, holds it in memory as uint8, batches per device."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from gan_lab.data import sources
from gan_lab.data.batch_sampler import EpochBatchSampler
from gan_lab.data.folder_data import ImageFileDataset
from gan_lab.data.sources import MNIST, DataSource, ImageSet
from gan_lab.data.tensor_cache import cache_key, load_cached, store_cached
from gan_lab.data.tensor_loader import ResumableDataLoader, TensorImageDataset
from gan_lab.data.transforms import random_hflip, resize_uint8, to_model_shape, uint8_to_float
from gan_lab.errors import ConfigError

log = logging.getLogger(__name__)


class GANDataModule(L.LightningDataModule):
    """Images in [-1, 1] with their labels.

    ``source`` is any :class:`~gan_lab.data.sources.DataSource` (the YAML's ``_target_``).
    ``batch_size`` is the *global* batch: each of the ``world_size`` ranks gets
    ``batch_size // world_size`` images per step, so changing the number of devices does not
    change the optimisation. ``path`` (an image folder) replaces the source's own files, which
    is how an offline copy of CIFAR-10 is used.
    """

    def __init__(
        self,
        source: DataSource | None = None,
        data_dir: str = "data",
        path: str | None = None,
        image_size: int = 32,
        channels: int = 1,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        hflip: bool = False,
        heldout_fraction: float = 0.1,
        cache_dir: str | None = None,
        seed: int = 0,
        in_memory_max_images: int = 100_000,
        num_classes: int | None = None,
        train_subset: int | None = None,
        on_device: bool = False,
    ) -> None:
        super().__init__()
        source = source if source is not None else MNIST()
        if source.needs_path and not path:
            raise ConfigError(
                "data.path", path, f"data={source.name} needs data.path=<folder of images>"
            )
        if not 0.0 < heldout_fraction < 1.0:
            raise ConfigError("data.heldout_fraction", heldout_fraction, "must be in (0, 1)")
        if in_memory_max_images < 0:
            raise ConfigError(
                "data.in_memory_max_images", in_memory_max_images, "must be >= 0 (0: per sample)"
            )
        if train_subset is not None and train_subset < 1:
            raise ConfigError("data.train_subset", train_subset, "must be >= 1, or null for all")
        self.save_hyperparameters(ignore=["source"], logger=False)
        self.train_subset = train_subset  # the first N training images only (debug=overfit)
        # the uint8 training tensor lives on the training device: no per-batch host-to-device copy
        self.on_device = on_device
        self.data_source, self.path = source, Path(path).expanduser() if path else None
        self.source = source.name  # the dataset's name: caches, reference stats, classifier
        self.data_dir = Path(data_dir).expanduser()
        self.image_size, self.channels = image_size, channels
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.hflip, self.heldout_fraction = hflip, heldout_fraction
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.seed = seed
        self.in_memory_max_images = in_memory_max_images
        self.configured_num_classes = (
            num_classes  # what conditional nets were built for (data.num_classes)
        )
        self.train_set: ImageSet | None = None
        self.train_files: ImageFileDataset | None = None  # the per-sample path for large folders
        self.heldout_set: ImageSet | None = None
        self.sampler: EpochBatchSampler | None = None

    # ----------------------------------------------------------------------------- loading
    @property
    def dataset_name(self) -> str:
        """A name for caches and metric reference statistics."""
        return f"{self.source}:{self.path}" if self.path else self.source

    @property
    def class_names(self) -> list[str]:
        self._ensure_loaded()
        train = self.train_set if self.train_set is not None else self.train_files
        assert train is not None
        return train.class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _load_native(self, split: str) -> ImageSet:
        if self.path is not None:
            return self._load_folder_split(split)
        return self.data_source.load(split, self.data_dir, self.image_size, self.channels)

    def _folder_split_files(self, split: str) -> tuple[list[Path], list[int], list[str]]:
        assert self.path is not None
        split_dirs = sources.folder_splits(self.path)
        folder = split_dirs[split] if split_dirs else self.path
        files, labels, class_names = sources.list_image_folder(folder)
        if split_dirs:
            return files, labels, class_names
        # A flat folder: hold out a fixed, seed-independent fraction for metrics.
        perm = torch.randperm(len(files), generator=torch.Generator().manual_seed(0))
        n_held = max(1, int(len(files) * self.heldout_fraction))
        keep = perm[:n_held] if split == "test" else perm[n_held:]
        return [files[i] for i in keep.tolist()], [labels[i] for i in keep.tolist()], class_names

    def _load_folder_split(self, split: str) -> ImageSet:
        files, labels, class_names = self._folder_split_files(split)
        native_channels = 1 if self.channels == 1 else 3
        images = sources.decode_images(
            files, native_channels, lambda img: resize_uint8(img, self.image_size)
        )
        return ImageSet(images, torch.tensor(labels, dtype=torch.long), class_names)

    def streams_from_files(self) -> bool:
        """A folder with more than ``in_memory_max_images`` training images is read per sample."""
        if self.path is None:
            return False
        if not hasattr(self, "_train_file_count"):
            self._train_file_count = len(self._folder_split_files("train")[0])
        return self._train_file_count > self.in_memory_max_images

    def _cache_file(self, split: str) -> Path | None:
        if self.cache_dir is None or not (self.data_source.cacheable or self.path):
            return None
        origin = self.path.resolve() if self.path else self.data_dir.resolve()
        stamp = self.path.stat().st_mtime_ns if self.path else 0
        key = cache_key(
            self.source, origin, stamp, split, self.image_size, self.channels, self.heldout_fraction
        )
        return (
            self.cache_dir / f"{self.source}-{split}-{self.image_size}px-{self.channels}ch-{key}.pt"
        )

    def load_split(self, split: str) -> ImageSet:
        """The split at the model's size and channels, from the on-disk cache when present."""
        cache_file = self._cache_file(split)
        cached = load_cached(cache_file) if cache_file else None
        if cached is not None:
            return cached
        start = time.perf_counter()
        image_set = to_model_shape(self._load_native(split), self.image_size, self.channels)
        log.info(
            "decoded %s/%s: %d images in %.1fs",
            self.dataset_name,
            split,
            len(image_set),
            time.perf_counter() - start,
        )
        if cache_file:
            store_cached(image_set, cache_file)
        return image_set

    def prepare_data(self) -> None:
        # Runs on one process per node: downloads and fills the cache once.
        for split in sources.SPLITS:
            if not (split == "train" and self.streams_from_files()):
                self.load_split(split)

    def _ensure_loaded(self) -> None:
        if self.train_set is None and self.train_files is None:
            if self.streams_from_files():
                files, labels, class_names = self._folder_split_files("train")
                self.train_files = ImageFileDataset(
                    files, labels, self.image_size, self.channels, class_names
                )
            else:
                self.train_set = self.load_split("train")
                if self.train_subset is not None:
                    keep = min(self.train_subset, len(self.train_set))
                    self.train_set = self.train_set.subset(torch.arange(keep))
            self.heldout_set = self.load_split("test")

    def setup(self, stage: str | None = None) -> None:
        self._ensure_loaded()
        if self.on_device:
            self._move_train_set_to_device()
        if (
            self.configured_num_classes is not None
            and self.configured_num_classes != self.num_classes
        ):
            raise ConfigError(
                "data.num_classes",
                self.configured_num_classes,
                f"the data has {self.num_classes} classes; set data.num_classes={self.num_classes}",
            )

    def _move_train_set_to_device(self) -> None:
        """On an accelerator, hold the uint8 training set there (a no-op on CPU)."""
        device = self.trainer.strategy.root_device if self.trainer is not None else None
        if device is None or device.type == "cpu":
            return
        if self.train_files is not None:
            raise ConfigError(
                "data.on_device",
                True,
                f"this folder has more than data.in_memory_max_images={self.in_memory_max_images} "
                "training images, so they are decoded per sample, not held as one tensor; raise "
                "data.in_memory_max_images or set data.on_device=false",
            )
        if self.num_workers > 0:
            raise ConfigError(
                "data.num_workers",
                self.num_workers,
                f"data.on_device=true gathers batches on {device} in the training process, "
                "without loader workers; set data.num_workers=0 or data.on_device=false",
            )
        assert self.train_set is not None
        if self.train_set.images.device != device:
            self.train_set = self.train_set.to(device)
            log.info("training images held on %s (%d images)", device, len(self.train_set))

    # ----------------------------------------------------------------------------- batching
    def world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    @property
    def batch_size_per_device(self) -> int:
        _, world_size = self.world()
        if self.batch_size % world_size:
            raise ConfigError(
                "data.batch_size",
                self.batch_size,
                f"the global batch must divide by the {world_size} processes; use a multiple of {world_size}",
            )
        return self.batch_size // world_size

    def train_dataloader(self) -> DataLoader:
        self._ensure_loaded()
        rank, world_size = self.world()
        train = self.train_set if self.train_set is not None else self.train_files
        assert train is not None
        self.sampler = EpochBatchSampler(
            len(train),
            self.batch_size_per_device,
            seed=self.seed,
            rank=rank,
            world_size=world_size,
        )
        if self.train_files is not None:  # decode per sample in workers; same batches, same order
            return ResumableDataLoader(
                self.train_files,
                batches_done=self._batches_done_this_epoch,
                batch_sampler=self.sampler,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                persistent_workers=self.num_workers > 0,
            )
        assert self.train_set is not None
        return ResumableDataLoader(
            TensorImageDataset(self.train_set.images, self.train_set.labels),
            batches_done=self._batches_done_this_epoch,
            batch_size=None,  # the sampler yields whole batches of indices
            sampler=self.sampler,
            num_workers=self.num_workers,
            # pinning is for host tensors; batches gathered on the GPU are already there
            pin_memory=self.pin_memory and self.train_set.images.device.type == "cpu",
            persistent_workers=self.num_workers > 0,
        )

    def _batches_done_this_epoch(self) -> int:
        """Batches of the current epoch the trainer consumed: the data position saved for resume."""
        if self.trainer is None:
            return 0
        return int(self.trainer.fit_loop.epoch_loop.batch_progress.current.processed)

    def heldout_images(self, n: int | None = None) -> ImageSet:
        """uint8 held-out images for metrics (the test split for MNIST / CIFAR-10)."""
        self._ensure_loaded()
        assert self.heldout_set is not None
        return (
            self.heldout_set
            if n is None
            else self.heldout_set.subset(torch.arange(min(n, len(self.heldout_set))))
        )

    def on_after_batch_transfer(
        self, batch: Any, dataloader_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Conversion and augmentation run on the whole batch, on the device.
        images, labels = batch
        images = uint8_to_float(images)
        if self.hflip and self.trainer is not None and self.trainer.training:
            images = random_hflip(images)
        return images, labels

    def state_dict(self) -> dict[str, Any]:
        return {
            "source": self.dataset_name,
            "image_size": self.image_size,
            "channels": self.channels,
        }
