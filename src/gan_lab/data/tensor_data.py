"""Decoded-once uint8 tensors, whole-batch indexing and batch-level conversion.

Small image datasets fit in memory as uint8 (CIFAR-10 train: 150 MB). Keeping them there and
slicing whole batches removes the per-sample PIL/transform cost that dominates classic loops.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from gan_lab.checkpoint_io import atomic_torch_save as save_atomically
from gan_lab.data.sources import ImageSet

log = logging.getLogger(__name__)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 NCHW (or CHW) images, rounded back to uint8."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    batched = images if images.ndim == 4 else images[None]
    # In chunks: a whole dataset as float32 would need 4x its uint8 size (2.4 GB for CIFAR-10 at 64px).
    out = torch.cat(
        [
            F.interpolate(
                chunk.float(),
                size=(size, size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
            for chunk in batched.split(1024)
        ]
    )
    return out if images.ndim == 4 else out[0]


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey -> RGB by repetition, RGB -> grey by ITU-R 601 luma."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels")


def to_model_shape(image_set: ImageSet, image_size: int, channels: int) -> ImageSet:
    images = convert_channels(resize_uint8(image_set.images, image_size), channels)
    return ImageSet(images.contiguous(), image_set.labels, image_set.class_names)


def uint8_to_float(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range of a tanh generator."""
    return images.to(dtype).div_(127.5).sub_(1.0)


def random_hflip(images: torch.Tensor) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2: one draw per image, whole batch at once."""
    flip = torch.rand(images.shape[0], device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def float_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8, rounding (not truncating) as the FID protocol does."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def cache_key(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]


def load_cached(path: Path) -> ImageSet | None:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        return ImageSet(blob["images"], blob["labels"], list(blob["class_names"]))
    except Exception as err:  # a stale or damaged cache is rebuilt, never trusted
        log.warning("ignoring unreadable data cache %s (%s)", path, err)
        return None


def store_cached(image_set: ImageSet, path: Path) -> None:
    try:
        save_atomically(
            {
                "images": image_set.images,
                "labels": image_set.labels,
                "class_names": image_set.class_names,
            },
            path,
        )
    except OSError as err:  # a read-only cache dir only costs speed
        log.warning("could not write data cache %s (%s)", path, err)


class TensorImageDataset(Dataset):
    """Indexing with a 1-D index tensor returns a whole batch: one gather instead of B lookups."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


class EpochBatchSampler(Sampler[torch.Tensor]):
    """Yields this rank's index batches of an epoch-seeded permutation.

    One permutation per epoch is shared by all ranks (same seed), cut into global batches of
    ``batch_size * world_size``, and each rank takes its contiguous slice: shards are disjoint
    and a DDP run sees exactly the batches a single process with the global batch would see.
    The incomplete last global batch is dropped so every step has the same batch size.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_samples < batch_size * world_size:
            raise ValueError(
                f"the dataset has {num_samples} images, fewer than one global batch "
                f"({batch_size} x {world_size} ranks); lower data.batch_size"
            )
        self.num_samples, self.batch_size = num_samples, batch_size
        self.shuffle, self.seed = shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start_batch = 0  # batches of the current epoch already consumed (for mid-epoch resume)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        # The full epoch even when resuming mid-epoch: Lightning counts the batches already done.
        return self.num_samples // (self.batch_size * self.world_size)

    def permutation(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.num_samples)
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.num_samples, generator=g)

    def __iter__(self) -> Iterator[torch.Tensor]:
        perm = self.permutation()
        global_batch = self.batch_size * self.world_size
        start, self.start_batch = self.start_batch, 0
        for b in range(start, self.num_samples // global_batch):
            chunk = perm[b * global_batch : (b + 1) * global_batch]
            yield chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]

    def state_dict(self, batches_done: int) -> dict[str, int]:
        """Where the run stands in the data: enough to continue at the exact next batch."""
        return {
            "epoch": self.epoch,
            "batches_done": batches_done,
            "num_samples": self.num_samples,
            "global_batch": self.batch_size * self.world_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue after ``batches_done`` batches of ``epoch`` (the next epoch when it was complete)."""
        if (state.get("num_samples"), state.get("global_batch")) != (
            self.num_samples,
            self.batch_size * self.world_size,
        ):
            log.warning(
                "resuming with a different dataset size or global batch (%s); the data order restarts "
                "at the beginning of the epoch",
                state,
            )
            self.epoch, self.start_batch = int(state.get("epoch", 0)), 0
            return
        self.epoch, self.start_batch = int(state["epoch"]), int(state["batches_done"])
        if self.start_batch >= len(self):
            self.epoch, self.start_batch = self.epoch + 1, 0


class ResumableDataLoader(DataLoader):
    """A DataLoader Lightning treats as stateful: a mid-epoch resume continues at the next batch.

    Lightning saves ``state_dict()`` in checkpoints and calls ``load_state_dict`` before the first
    batch of a resumed run. ``batches_done`` reports how many batches of the current epoch the
    trainer consumed (prefetching makes the sampler's own count run ahead). The loader draws its
    worker base seed from its own generator, so creating an epoch's iterator never advances the
    global RNG, which a resumed run could not replay.
    """

    def __init__(self, *args: Any, batches_done: Callable[[], int], **kwargs: Any) -> None:
        kwargs.setdefault("generator", torch.Generator().manual_seed(0))
        super().__init__(*args, **kwargs)
        self.batches_done = batches_done

    @property
    def epoch_sampler(self) -> EpochBatchSampler:
        sampler = (
            self.batch_sampler
            if isinstance(self.batch_sampler, EpochBatchSampler)
            else self.sampler
        )
        assert isinstance(sampler, EpochBatchSampler), (
            "ResumableDataLoader needs an EpochBatchSampler"
        )
        return sampler

    def state_dict(self) -> dict[str, int]:
        return self.epoch_sampler.state_dict(self.batches_done())

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch_sampler.load_state_dict(state)
