"""Loading batches from an in-memory uint8 tensor: one gather per batch, and a DataLoader that
Lightning saves and restores (mid-epoch resume continues at the exact next batch).

Small image datasets fit in memory as uint8 (CIFAR-10 train: 150 MB). Keeping them there and
slicing whole batches removes the per-sample PIL/transform cost that dominates classic loops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from gan_lab.data.batch_sampler import EpochBatchSampler


class TensorImageDataset(Dataset):
    """Indexing with a 1-D index tensor returns a whole batch: one gather instead of B lookups."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


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
