"""An 8x8 grid from the fixed noise every N generator steps: comparable pictures across a run."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image

from gan_lab.errors import ConfigError
from gan_lab.loggers import log_image


class SampleGrid(L.Callback):
    """Writes ``<dirpath>/step_XXXXXXX.png`` and the image ``samples/fixed_noise`` to every logger
    that takes images (TensorBoard, MLflow, W&B)."""

    def __init__(self, every_n_steps: int = 500, dirpath: str | None = None, nrow: int = 8) -> None:
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ConfigError(
                "callbacks.sample_grid.every_n_steps", every_n_steps, "must be an integer >= 1"
            )
        self.every_n_steps, self.nrow = every_n_steps, nrow
        self.dirpath = Path(dirpath) if dirpath else None
        self._last_logged_step = -1

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object
    ) -> None:
        step = trainer.global_step
        if step > 0 and step % self.every_n_steps == 0 and step != self._last_logged_step:
            self.log_grid(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step != self._last_logged_step:
            self.log_grid(trainer, pl_module)

    @rank_zero_only
    def log_grid(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = trainer.global_step
        self._last_logged_step = step
        images = pl_module.generate(pl_module.fixed_z, pl_module.fixed_y)
        grid = grid_tensor(images, self.nrow)
        for logger in trainer.loggers:
            log_image(logger, "samples/fixed_noise", grid, step)
        dirpath = self.dirpath or Path(trainer.default_root_dir) / "samples"
        dirpath.mkdir(parents=True, exist_ok=True)
        save_image(grid, dirpath / f"step_{step:07d}.png")

    def state_dict(self) -> dict[str, int]:
        return {"last_logged_step": self._last_logged_step}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._last_logged_step = int(state_dict.get("last_logged_step", -1))


def grid_tensor(images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """[-1, 1] images -> a [0, 1] grid image (C, H, W)."""
    return make_grid(images.float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1))
