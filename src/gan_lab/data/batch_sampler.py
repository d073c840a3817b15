"""The epoch batch sampler: one permutation per epoch, sharded across DDP ranks, resumable mid-epoch."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

log = logging.getLogger(__name__)


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
