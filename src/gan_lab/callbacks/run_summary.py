"""A run's hyperparameters and final numbers, in every logger: what runs of a sweep are compared by.

At the start every logger gets the flat hyperparameters (``gan_lab.hparams``: TensorBoard's
HPARAMS session, MLflow params, W&B config). At the end it gets the final numbers under
``final/`` (the last batch's losses and D scores, the last evaluation's ``metrics/*``, ``sweep/*``,
G steps, D updates, kimg) and, when the run has an ``optimized_metric``, its best value over the
run under ``best/``; TensorBoard then gets the HPARAMS columns and the session's end (see
``gan_lab.tensorboard_hparams`` for why the records are split that way).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from gan_lab import tensorboard_hparams
from gan_lab.callbacks.best_so_far import BestSoFar
from gan_lab.callbacks.progress import training_progress
from gan_lab.hparams import Scalar
from gan_lab.training.step_stats import StepStats

log = logging.getLogger(__name__)

# the final numbers of every run (besides metrics/* and sweep/*), in the order of the columns
FINAL_KEYS = ("loss/d", "loss/g", "D(x)", "D(G(z))", "g_step", "d_updates", "kimg")
COMPARED_PREFIXES = ("metrics/", "sweep/")
NOT_COMPARED = ("metrics/seconds", "metrics/kimg")  # what an evaluation cost and when: no results
DIRECTIONS = ("minimize", "maximize")


def shortest_fp32(value: float) -> float:
    """The shortest decimal that is the same float32: ``0.0002``, not the ``0.000199999994...``
    that widening float32 to a Python float prints (metrics.json, sweep tables)."""
    return float(str(np.float32(value)))


def scalar_value(value: torch.Tensor) -> float:
    """A one-element tensor as a float, with no more digits than its dtype holds (<= float32)."""
    number = float(value.item())
    narrow = value.is_floating_point() and value.dtype.itemsize <= 4
    return shortest_fp32(number) if narrow else number


def final_scalars(trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
    """Every scalar the run ended with: logged values, and the last batch's losses and D scores."""
    metrics = {k: scalar_value(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    stats = getattr(pl_module, "step_stats", None)
    if isinstance(stats, StepStats):  # also when the last batch was not a logged one (fp32)
        metrics.update({k: shortest_fp32(v) for k, v in stats.floats().items()})
    return metrics


class RunSummary(L.Callback):
    """Registers ``hparams`` with every logger at the start and the run's final numbers at the end.

    ``varied``: the keys a sweep varies (a single run's overrides), shown first in TensorBoard.
    ``optimized_metric``/``direction``: the sweep's objective, an evaluation such as
    ``metrics/classifier_fd`` or ``sweep/pixel_swd``; its best value over the run is reported
    as ``best/<metric>``.
    """

    def __init__(
        self,
        hparams: Mapping[str, Scalar],
        varied: Sequence[str] = (),
        optimized_metric: str | None = None,
        direction: str = "minimize",
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction={direction!r}: choose one of {', '.join(DIRECTIONS)}")
        self.hparams = dict(hparams)
        self.varied = [k for k in varied if k in self.hparams]
        self.optimized_metric, self.direction = optimized_metric, direction
        self._best = BestSoFar(optimized_metric, "min" if direction == "minimize" else "max")
        self._metrics: Mapping[str, Any] = {}
        self.final: dict[str, float] = {}

    # ------------------------------------------------------------------------------- start
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._metrics = trainer.callback_metrics
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            logger.log_hyperparams(self.hparams)
            if isinstance(logger, TensorBoardLogger):
                tensorboard_hparams.write(logger, tensorboard_hparams.session_start(self.hparams))

    # ------------------------------------------------------------------------------- best
    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        # the dict evaluations write their values into (``trainer.callback_metrics`` rebuilds it
        # from the logged results on every access: ~0.1 ms, too much for every batch)
        self._observe(self._metrics)

    def _observe(self, metrics: Mapping[str, Any]) -> None:
        """Fold a new value of the optimised metric into the best (each written tensor once)."""
        self._best.offer(metrics)

    @property
    def best(self) -> float | None:
        return self._best.value

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._best.value = state_dict.get("best")

    # ------------------------------------------------------------------------------- end
    def summary_metrics(self, scalars: Mapping[str, float]) -> dict[str, float]:
        """``final/<key>`` for the compared keys (objective first), ``best/<objective>``."""
        compared = [k for k in scalars if k.startswith(COMPARED_PREFIXES) and k not in NOT_COMPARED]
        keys = compared + list(FINAL_KEYS)
        if self.optimized_metric:
            keys.insert(0, self.optimized_metric)
        summary: dict[str, float] = {}
        if self.optimized_metric and self.best is not None:
            summary[f"best/{self.optimized_metric}"] = self.best
        for key in dict.fromkeys(keys):
            if key in scalars and math.isfinite(scalars[key]):
                summary[f"final/{key}"] = scalars[key]
        return summary

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        progress = training_progress(trainer, pl_module)
        for key, value in (("g_step", progress.g_step), ("d_updates", progress.d_updates)):
            trainer.callback_metrics[key] = torch.tensor(float(value))
        trainer.callback_metrics["kimg"] = torch.tensor(progress.kimg)
        self._observe(trainer.callback_metrics)  # also one computed at the end (sweep/pixel_swd)
        if self.optimized_metric and self.best is not None:  # also into metrics.json and summaries
            trainer.callback_metrics[f"best/{self.optimized_metric}"] = torch.tensor(self.best)
        self.final = self.summary_metrics(final_scalars(trainer, pl_module))
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            logger.log_metrics(self.final, step=trainer.global_step)
            if isinstance(logger, TensorBoardLogger):
                tensorboard_hparams.write(
                    logger,
                    tensorboard_hparams.experiment(self.hparams, self.varied, list(self.final)),
                    tensorboard_hparams.session_end(),
                    step=trainer.global_step,
                )
        log.info("final: %s", ", ".join(f"{k}={v:.4g}" for k, v in self.final.items()))
