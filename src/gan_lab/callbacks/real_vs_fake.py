"""Once, when a run starts: real training images beside the fixed-noise fakes, in one picture.

The first thing to check in a new run is that the data looks as intended (orientation, range,
channels, classes) and at what the untrained generator starts; later sample grids are compared
against it. For conditional models each real image has the class of the fake at the same place.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image

from gan_lab.callbacks.sample_grid import grid_tensor
from gan_lab.loggers import log_image

TAG = "samples/real_vs_fake"
GAP = 8  # pixels


def real_images(
    datamodule: L.LightningDataModule, classes: torch.Tensor | None, n: int, seed: int
) -> torch.Tensor:
    """uint8 training images, ``n`` drawn by ``seed``; with ``classes``, one of each class asked
    (``n`` images in both cases, repeating images when the data set has fewer)."""
    data = datamodule.train_set if datamodule.train_set is not None else datamodule.train_files
    labels = data.labels.cpu()
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)
    if classes is None:  # a data set smaller than n: its images again, so both halves match
        index = order.repeat(-(-n // len(order)))[:n]
    else:  # the first image (in the random order) of each requested class, cycling within a class
        by_class = {int(c): order[labels[order] == c] for c in classes.unique()}
        seen: dict[int, int] = {}
        picks = []
        for c in classes.tolist():
            pool = by_class[c] if len(by_class[c]) else order
            picks.append(int(pool[seen.get(c, 0) % len(pool)]))
            seen[c] = seen.get(c, 0) + 1
        index = torch.tensor(picks)
    if datamodule.train_set is not None:
        return datamodule.train_set.images[index].cpu()
    return torch.stack([data[int(i)][0] for i in index])


class RealVsFake(L.Callback):
    """Writes ``<dirpath>/real_vs_fake.png`` and logs it to every logger that takes images."""

    def __init__(self, dirpath: str | None = None, nrow: int = 8, seed: int = 0) -> None:
        self.dirpath = Path(dirpath) if dirpath else None
        self.nrow, self.seed = nrow, seed

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:  # a resumed run already has its picture
            self.log_picture(trainer, pl_module)

    @rank_zero_only
    def log_picture(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        fixed_y = pl_module.fixed_y.cpu() if pl_module.num_classes else None
        n = len(pl_module.fixed_z)
        real = real_images(trainer.datamodule, fixed_y, n, self.seed).float() / 255
        real_grid = make_grid(real, nrow=self.nrow)
        fake_grid = grid_tensor(pl_module.generate(pl_module.fixed_z, pl_module.fixed_y), self.nrow)
        if real_grid.shape[0] != fake_grid.shape[0]:  # grey data, RGB grid: make_grid repeats
            real_grid = real_grid.expand_as(fake_grid)
        gap = torch.ones(fake_grid.shape[0], fake_grid.shape[1], GAP)  # a white bar between them
        picture = torch.cat([real_grid, gap, fake_grid], dim=2)
        dirpath = self.dirpath or Path(trainer.default_root_dir) / "samples"
        dirpath.mkdir(parents=True, exist_ok=True)
        save_image(picture, dirpath / "real_vs_fake.png")
        for logger in trainer.loggers:
            log_image(logger, TAG, picture, trainer.global_step)
