"""A GAN's progress in its own units: G steps of ``trainer.max_steps``, D updates, kimg, img/s.

Lightning's bars count batches, which are D updates here: with ``model.n_critic=5`` a 5-step run
showed ``5/5`` and then ``20/?``. GAN papers count generator steps and *kimg*, the thousands of
real images shown to D (stylegan2-ada's unit): ``D updates x global batch / 1000``, summed over
DDP ranks because ``data.batch_size`` is the global batch.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from gan_lab.errors import ConfigError
from gan_lab.training.step_stats import latest_scalar


@dataclass(frozen=True)
class TrainingProgress:
    """Where a run is: what the checkpoint stores and the console prints."""

    g_step: int
    d_updates: int
    images_shown: int  # real images D has seen, all ranks together

    @property
    def kimg(self) -> float:
        return self.images_shown / 1000

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "kimg": self.kimg}

    def describe(self) -> str:
        return f"G step {self.g_step}, {self.d_updates} D updates, {self.kimg:.1f} kimg"


def global_batch_size(trainer: L.Trainer, batch: Any = None) -> int:
    """Images per D update over all ranks: the datamodule's global batch, else this rank's x world."""
    size = getattr(trainer.datamodule, "batch_size", None)
    if isinstance(size, int) and size > 0:
        return size
    if isinstance(batch, list | tuple) and batch and hasattr(batch[0], "shape"):
        return int(batch[0].shape[0]) * trainer.world_size
    return 0


def training_progress(
    trainer: L.Trainer, pl_module: L.LightningModule, batch: Any = None
) -> TrainingProgress:
    d_updates = int(getattr(pl_module, "d_updates", trainer.global_step))
    return TrainingProgress(
        trainer.global_step, d_updates, d_updates * global_batch_size(trainer, batch)
    )


class GANProgressBar(ProgressBar):
    """A rich bar of G steps against ``trainer.max_steps`` with kimg, img/s and the latest losses.

    ``progress.tasks[0]`` holds what is shown (``completed``/``total`` in G steps, the fields
    ``kimg``, ``img_per_s``, ``d_updates``), so it can be read as well as watched.
    """

    def __init__(self, refresh_rate: int = 20, scalars: tuple[str, ...] = ("loss/d", "loss/g")):
        super().__init__()
        if not isinstance(refresh_rate, int) or refresh_rate < 1:
            raise ConfigError(
                "callbacks.progress_bar.refresh_rate", refresh_rate, "must be an integer >= 1"
            )
        self.refresh_rate, self.scalars = refresh_rate, tuple(scalars)
        self._enabled = True
        self.progress: Progress | None = None
        self.task_id: TaskID | None = None
        self._last: tuple[float, int] | None = None  # (time, images) at the previous refresh

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def print(self, *args: Any, **kwargs: Any) -> None:
        """Above the bar while it is drawn (``LightningModule.print`` lands here)."""
        if self.progress is not None and self.progress.live.is_started:
            self.progress.console.print(*args, **kwargs)
        else:
            print(*args, **kwargs)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._enabled:
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("G step {task.completed}/{task.fields[total_text]}"),
            TextColumn("{task.fields[d_updates]} D updates"),
            TextColumn("{task.fields[kimg]:.1f} kimg"),
            TextColumn("{task.fields[img_per_s]:.0f} img/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[scalars_text]}"),
            console=Console(),
            auto_refresh=False,  # redrawn on our refreshes only: no thread competing with training
        )
        self.progress.start()
        now = training_progress(trainer, pl_module)
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        self.task_id = self.progress.add_task(
            "train", total=total, completed=now.g_step, total_text=total or "?",
            d_updates=now.d_updates, kimg=now.kimg, img_per_s=0.0, scalars_text="",
        )  # fmt: skip
        self._last = (time.perf_counter(), now.images_shown)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        if self.progress is None:
            return
        done = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
        if (batch_idx + 1) % self.refresh_rate and not done:
            return
        self.refresh(trainer, pl_module, batch)

    def refresh(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any = None) -> None:
        """Show the current G step, D updates, kimg, the rate since the last refresh and losses."""
        if self.progress is None or self.task_id is None:
            return
        now = training_progress(trainer, pl_module, batch)
        t = time.perf_counter()
        fields: dict[str, Any] = {"d_updates": now.d_updates, "kimg": now.kimg}
        if self._last is not None and t > self._last[0] and now.images_shown > self._last[1]:
            fields["img_per_s"] = (now.images_shown - self._last[1]) / (t - self._last[0])
        self._last = (t, now.images_shown)
        values = {k: latest_scalar(trainer, pl_module, k) for k in self.scalars}
        fields["scalars_text"] = "  ".join(
            f"{k} {v:.3f}" for k, v in values.items() if v is not None
        )
        self.progress.update(self.task_id, completed=now.g_step, refresh=True, **fields)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.refresh(trainer, pl_module)
        self._stop()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._stop()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.progress is not None and self.progress.live.is_started:
            self.progress.stop()
