"""What the divergence guard and the health monitor do once they see trouble: stop or roll back.

Rolling back reloads the weights and optimizer states of the newest checkpoint whose weights are
finite (or, before the first checkpoint, of the start of training) and multiplies every learning
rate by ``lr_factor``. Counters, data position and RNG move on: the retry sees new batches and new
noise instead of replaying the exact steps that went wrong.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch

from gan_lab.checkpoint_io import CheckpointError, checkpoint_candidates, read_checkpoint
from gan_lab.errors import ConfigError, UserError

log = logging.getLogger(__name__)


class TrainingStopped(UserError):
    """A guard stopped the run on purpose; the message says what it saw and what to try."""


def check_policy(key: str, policy: str, allowed: tuple[str, ...]) -> None:
    if policy not in allowed:
        raise ConfigError(key, policy, f"choose one of {', '.join(allowed)}")


def _all_finite(state_dict: dict[str, Any]) -> bool:
    return all(
        torch.isfinite(t).all()
        for t in state_dict.values()
        if isinstance(t, torch.Tensor) and t.is_floating_point()
    )


class Snapshot:
    """Weights and optimizer states at the start of training: the rollback target before any checkpoint."""

    def __init__(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.state_dict = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        self.optimizer_states = [copy.deepcopy(opt.state_dict()) for opt in trainer.optimizers]


def _checkpoint_dir(trainer: L.Trainer) -> Path | None:
    callback = trainer.checkpoint_callback
    dirpath = getattr(callback, "dirpath", None)
    return Path(dirpath) if dirpath else None


def newest_finite_checkpoint(trainer: L.Trainer) -> tuple[Path, dict[str, Any]] | None:
    folder = _checkpoint_dir(trainer)
    for path in checkpoint_candidates([folder] if folder else []):
        try:
            checkpoint = read_checkpoint(path)
        except CheckpointError as err:
            log.warning("rollback: skipping %s", err)
            continue
        if "optimizer_states" in checkpoint and _all_finite(checkpoint["state_dict"]):
            return path, checkpoint
    return None


def scale_learning_rates(trainer: L.Trainer, factor: float) -> None:
    for optimizer in trainer.optimizers:
        for group in optimizer.param_groups:
            group["lr"] *= factor
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        if hasattr(scheduler, "base_lrs"):  # schedules recompute lr from base_lrs on every step
            scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]


def roll_back(
    trainer: L.Trainer, pl_module: L.LightningModule, snapshot: Snapshot | None, lr_factor: float
) -> str:
    """Reload the last good weights and optimizer states, lower all LRs; returns where from."""
    found = newest_finite_checkpoint(trainer)
    if found is not None:
        path, checkpoint = found
        state_dict, optimizer_states, source = (
            checkpoint["state_dict"],
            checkpoint["optimizer_states"],
            str(path),
        )
    elif snapshot is not None:
        state_dict, optimizer_states, source = (
            snapshot.state_dict,
            snapshot.optimizer_states,
            "the start of training",
        )
    else:
        raise TrainingStopped(
            "rollback impossible: no checkpoint and no snapshot of the start of training"
        )
    pl_module.load_state_dict(state_dict)
    lrs_before = [[g["lr"] for g in opt.param_groups] for opt in trainer.optimizers]
    for optimizer, state in zip(trainer.optimizers, optimizer_states):
        optimizer.load_state_dict(state)
    # Keep the current LRs (the schedule moved on, earlier rollbacks lowered them), then lower them.
    for optimizer, lrs in zip(trainer.optimizers, lrs_before):
        for group, lr in zip(optimizer.param_groups, lrs):
            group["lr"] = lr
    scale_learning_rates(trainer, lr_factor)
    for optimizer in trainer.optimizers:
        optimizer.zero_grad(set_to_none=True)
    return source
