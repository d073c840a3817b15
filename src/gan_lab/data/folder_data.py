"""The per-sample path for image folders too large to hold in memory as one uint8 tensor.

Each item is decoded from its file when asked for (by DataLoader workers), with the same
center-crop and antialiased resize as the in-memory path, so both paths give the same pixels.
Batches still leave the DataLoader as uint8 and are converted on the device as whole batches.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from gan_lab.data.sources import decode_one
from gan_lab.data.transforms import convert_channels, resize_uint8


class ImageFileDataset(Dataset):
    """(uint8 CHW image, label) per index, decoded from disk on every access."""

    def __init__(
        self,
        files: list[Path],
        labels: list[int],
        image_size: int,
        channels: int,
        class_names: list[str],
    ) -> None:
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} labels")
        self.files, self.labels = files, torch.tensor(labels, dtype=torch.long)
        self.image_size, self.channels, self.class_names = image_size, channels, class_names

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(index)
        native = 1 if self.channels == 1 else 3
        image = resize_uint8(decode_one(self.files[i], native), self.image_size)
        return convert_channels(image[None], self.channels)[0], self.labels[i]
