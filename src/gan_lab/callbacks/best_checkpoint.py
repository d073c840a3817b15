"""``best.ckpt``: the weights of the evaluation that scored best on a monitored metric.

GAN quality is not monotone in training time: published logs show final-step FID several times
the best one, so the run keeps, next to ``last.ckpt``, the state of the G step whose evaluation
(``callbacks.metrics``, e.g. ``metrics/fid``) was the best so far. It is written through the
same crash-safe writer as every other checkpoint (atomic rename, digest inside) and is a full
training checkpoint: ``gan-eval``/``gan-sample ckpt_path=best run_dir=<run>`` read it, and
``ckpt_path=<run>/checkpoints/best.ckpt`` can even continue training from it.

The best value and its step are callback state, so a resumed run never replaces a better
``best.ckpt`` by a worse one. Metric values are already reduced across DDP ranks, so every rank
takes the same decision and joins the (collective) save; only rank 0 writes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from gan_lab.callbacks.best_so_far import MODES, BestSoFar
from gan_lab.callbacks.checkpointing import use_atomic_checkpoint_io
from gan_lab.callbacks.periodic_metrics import GeneratorMetrics
from gan_lab.callbacks.progress import training_progress
from gan_lab.checkpoint_io import BEST_NAME, CheckpointError, read_checkpoint
from gan_lab.errors import ConfigError

log = logging.getLogger(__name__)

# what the run's metrics.json says about it (the numbers also reach fit()'s returned scalars)
SUMMARY_KEYS = ("best_step", "best_kimg", "best_value")


class BestCheckpoint(L.Callback):
    """Writes ``<dirpath>/best.ckpt`` whenever ``monitor`` improves (``mode``: min or max)."""

    def __init__(self, dirpath: str, monitor: str | None = None, mode: str = "min") -> None:
        if mode not in MODES:
            raise ConfigError(
                "callbacks.best_checkpoint.mode", mode, "choose min (FID, KID) or max (IS, recall)"
            )
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ConfigError(
                "callbacks.best_checkpoint.monitor",
                monitor,
                "must be a logged key such as metrics/fid, or null for no best.ckpt",
            )
        self.dirpath, self.monitor, self.mode = Path(dirpath), monitor, mode
        self._best = BestSoFar(monitor, mode)
        self.best_step: int | None = None
        self.best_kimg: float | None = None
        self._metrics: Mapping[str, Any] = {}

    @property
    def best_value(self) -> float | None:
        return self._best.value

    @property
    def path(self) -> Path:
        return self.dirpath / BEST_NAME

    # ------------------------------------------------------------------------------- setup
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.monitor is None:
            log.info("callbacks.best_checkpoint.monitor is null: no best.ckpt is kept")
            return
        callbacks = trainer.callbacks
        mine = next(i for i, cb in enumerate(callbacks) if cb is self)
        if any(isinstance(cb, GeneratorMetrics) for cb in callbacks[mine + 1 :]):
            raise ConfigError(
                "callbacks.best_checkpoint",
                self.monitor,
                "comes before callbacks.metrics and would save the weights of a later step; list "
                "best_checkpoint after metrics in the callbacks config (as callbacks/default.yaml does)",
            )
        use_atomic_checkpoint_io(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._metrics = trainer.callback_metrics  # the dict evaluations write into
        if self.monitor is not None:
            self._adopt_better_file()

    def _adopt_better_file(self) -> None:
        """A run resumed from an older checkpoint than best.ckpt: keep the better record."""
        if not self.path.is_file():
            return
        try:
            state = read_checkpoint(self.path).get("callbacks", {}).get(self.state_key, {})
        except CheckpointError as err:
            log.warning("%s; it will be replaced by the next best evaluation", err)
            return
        value = state.get("best_value")
        same = state.get("monitor") == self.monitor and state.get("mode") == self.mode
        if same and value is not None and self._best.improves(float(value)):
            self.load_state_dict(state)
            log.info("best so far (from %s): %s=%.4g at G step %s", self.path, self.monitor, value, self.best_step)  # fmt: skip

    # ------------------------------------------------------------------------------- observing
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        self._observe(trainer, pl_module)

    def _observe(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        number = self._best.offer(self._metrics)
        if number is None:
            return
        progress = training_progress(trainer, pl_module)
        self.best_step, self.best_kimg = progress.g_step, progress.kimg
        # every rank saw the same reduced value: all join the save, rank 0 writes
        trainer.save_checkpoint(self.path, weights_only=False)
        if trainer.is_global_zero:
            log.info("new best %s=%.4g at %s: saved %s", self.monitor, number, progress.describe(), self.path)  # fmt: skip

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.monitor is None:
            return
        self._observe(trainer, pl_module)  # an evaluation of the final step (evaluate_at_end)
        if self.best_step is None:
            logged = sorted(k for k in trainer.callback_metrics if k.startswith("metrics/"))
            log.warning(
                "callbacks.best_checkpoint.monitor=%s was never logged: no best.ckpt written "
                "(logged metrics: %s)",
                self.monitor,
                ", ".join(logged) or "none",
            )
            return
        for key, value in zip(SUMMARY_KEYS, (self.best_step, self.best_kimg, self.best_value)):
            trainer.callback_metrics[key] = torch.tensor(float(value), dtype=torch.float64)

    # ------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "mode": self.mode,
            "best_value": self.best_value,
            "best_step": self.best_step,
            "best_kimg": self.best_kimg,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("monitor") != self.monitor or state_dict.get("mode") != self.mode:
            log.info(
                "best checkpoint: the resumed run monitored %s (%s), this one %s (%s): starting over",
                state_dict.get("monitor"), state_dict.get("mode"), self.monitor, self.mode,
            )  # fmt: skip
            return
        self._best.value = state_dict.get("best_value")
        self.best_step = state_dict.get("best_step")
        self.best_kimg = state_dict.get("best_kimg")


def best_checkpoint_record(
    callbacks: Sequence[Any], metrics: Mapping[str, float]
) -> dict[str, Any]:
    """What metrics.json says about the best checkpoint: metric, step, kimg, value, file.

    Built from the callback's settings and the final scalars (under spawned DDP the callback
    object of this process did not train, but rank 0's scalars came back).
    """
    for callback in callbacks:
        if isinstance(callback, BestCheckpoint) and callback.monitor and "best_step" in metrics:
            return {
                "best_metric": callback.monitor,
                "best_step": int(metrics["best_step"]),
                "best_kimg": float(metrics["best_kimg"]),
                "best_value": float(metrics["best_value"]),
                "best_ckpt": str(callback.path),
            }
    return {}
