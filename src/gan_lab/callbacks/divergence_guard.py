"""Catch non-finite losses and gradients in the step they appear, not hours later in a plot.

Gradients are checked right before each optimizer step (G's and D's), losses after the batch.
Under fp16 (16-mixed) the gradient check is left to the GradScaler, which skips overflowing steps
and lowers its scale as routine; non-finite losses are still caught.
Policies:

- ``skip``: drop the update (gradients cleared, so the optimizer changes nothing), count it; after
  ``max_consecutive_skips`` bad steps in a row the run stops, since skipping no longer helps;
- ``stop``: end the run with one line saying what went non-finite where;
- ``rollback``: skip the update, then reload the newest checkpoint with finite weights and lower
  every learning rate by ``lr_factor`` (at most ``max_rollbacks`` times, then stop).

Counters are logged as ``divergence/nonfinite_steps``, ``divergence/skipped_steps`` and
``divergence/rollbacks``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
import torch
from torch.optim import Optimizer

from gan_lab.errors import ConfigError
from gan_lab.lightning_internals import logger_writes
from gan_lab.training.grad_scale import active_grad_scaler
from gan_lab.training.recovery import Snapshot, TrainingStopped, check_policy, roll_back
from gan_lab.training.step_stats import latest_scalar

log = logging.getLogger(__name__)

POLICIES = ("skip", "stop", "rollback")
LOSS_KEYS = ("loss/d", "loss/g")


def gradients_finite(optimizer: Optimizer) -> bool:
    """One fused norm per parameter list, one host sync: cheap enough for every step."""
    grads = [
        p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None
    ]
    if not grads:
        return True
    return bool(torch.stack(torch._foreach_norm(grads)).isfinite().all())


class DivergenceGuard(L.Callback):
    def __init__(
        self,
        policy: str = "skip",
        max_consecutive_skips: int = 20,
        lr_factor: float = 0.5,
        max_rollbacks: int = 3,
    ) -> None:
        check_policy("callbacks.divergence_guard.policy", policy, POLICIES)
        if not 0.0 < lr_factor <= 1.0:
            raise ConfigError(
                "callbacks.divergence_guard.lr_factor", lr_factor, "must be in (0, 1], e.g. 0.5"
            )
        self.policy, self.lr_factor = policy, lr_factor
        self.max_consecutive_skips, self.max_rollbacks = max_consecutive_skips, max_rollbacks
        self.nonfinite_steps = self.skipped_steps = self.rollbacks = 0
        self._consecutive = 0
        self._bad_this_batch: str | None = None
        self._snapshot: Snapshot | None = None

    # ------------------------------------------------------------------ detection
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.policy == "rollback":
            self._snapshot = Snapshot(trainer, pl_module)

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer
    ) -> None:
        if active_grad_scaler(trainer) is not None:
            return  # fp16: the GradScaler skips steps with non-finite gradients and rescales
        if gradients_finite(optimizer):
            return
        net = "G" if optimizer is trainer.optimizers[0] else "D"
        self._detected(trainer, f"non-finite gradient of {net}")
        optimizer.zero_grad(set_to_none=True)  # the step that follows changes nothing
        self.skipped_steps += 1

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        if self._bad_this_batch is None:
            for key in LOSS_KEYS:
                value = latest_scalar(trainer, pl_module, key)
                if value is not None and not math.isfinite(value):
                    self._detected(trainer, f"non-finite {key} ({value})")
        if self._bad_this_batch is None:
            self._consecutive = 0
        elif self.policy == "rollback":
            self._roll_back(trainer, pl_module)
        self._bad_this_batch = None
        if logger_writes(trainer):
            pl_module.log_dict(
                {
                    "divergence/nonfinite_steps": float(self.nonfinite_steps),
                    "divergence/skipped_steps": float(self.skipped_steps),
                    "divergence/rollbacks": float(self.rollbacks),
                }
            )

    # ------------------------------------------------------------------ policies
    def _where(self, trainer: L.Trainer) -> str:
        return f"generator step {trainer.global_step}, batch {trainer.fit_loop.epoch_loop.batch_progress.total.ready}"

    def _detected(self, trainer: L.Trainer, what: str) -> None:
        if self._bad_this_batch is None:
            self.nonfinite_steps += 1
            self._consecutive += 1
        self._bad_this_batch = what
        hint = "lower model.optimizer_{g,d}.lr, set model.grad_clip_g/grad_clip_d, or use bf16/fp32 precision"
        if self.policy == "stop":
            raise TrainingStopped(
                f"training diverged: {what} at {self._where(trainer)} (divergence policy=stop); {hint}"
            )
        if self._consecutive > self.max_consecutive_skips:
            raise TrainingStopped(
                f"training diverged: {what} in {self._consecutive} batches in a row at {self._where(trainer)}; "
                f"skipping does not recover it; {hint}, or use callbacks.divergence_guard.policy=rollback"
            )
        if self._consecutive == 1:
            log.warning(
                "%s at %s: update skipped (policy=%s)", what, self._where(trainer), self.policy
            )

    def _roll_back(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.rollbacks >= self.max_rollbacks:
            raise TrainingStopped(
                f"training diverged again ({self._bad_this_batch}) at {self._where(trainer)} after "
                f"{self.rollbacks} rollbacks; lower the learning rates or clip gradients"
            )
        source = roll_back(trainer, pl_module, self._snapshot, self.lr_factor)
        self.rollbacks += 1
        self._consecutive = 0
        log.warning(
            "%s at %s: rolled back to %s, learning rates x%g (rollback %d of %d)",
            self._bad_this_batch,
            self._where(trainer),
            source,
            self.lr_factor,
            self.rollbacks,
            self.max_rollbacks,
        )

    # ------------------------------------------------------------------ checkpointed counters
    def state_dict(self) -> dict[str, int]:
        return {
            "nonfinite_steps": self.nonfinite_steps,
            "skipped_steps": self.skipped_steps,
            "rollbacks": self.rollbacks,
        }

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.nonfinite_steps = int(state_dict.get("nonfinite_steps", 0))
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))
        self.rollbacks = int(state_dict.get("rollbacks", 0))
