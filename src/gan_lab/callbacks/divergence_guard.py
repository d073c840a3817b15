"""Catch non-finite losses and gradients in the step they appear, not hours later in a plot.

Gradients are checked right before each optimizer step (G's and D's), losses after the batch.
With a fused optimizer (the configs' ``fused: true`` Adam) the check never waits for the device:
one fused kernel flags non-finite gradients into a device tensor that the optimizer's own kernel
reads as ``found_inf`` (as under a GradScaler), so a bad update is dropped on the device, moments
and step counts included. The host reads the flags of all batches since the last read in one
transfer, on the batches the loggers write and at least every ``check_every_n_batches``; the
policy then acts (a ``stop`` ends the run a few batches later, having applied no bad update).
Other optimizers cannot skip on the device: their gradients are checked on the host every step.
Under fp16 (16-mixed) the gradient check is left to the GradScaler, which skips overflowing steps
and lowers its scale as routine; non-finite losses are still caught.
Policies:

- ``skip``: drop the update (the optimizer changes nothing), count it; after
  ``max_consecutive_skips`` bad batches in a row the run stops, since skipping no longer helps;
- ``stop``: end the run with one line saying what went non-finite where;
- ``rollback``: skip the update, then reload the newest checkpoint with finite weights and lower
  every learning rate by ``lr_factor`` (at most ``max_rollbacks`` times, then stop).

Counters are logged as ``divergence/nonfinite_steps``, ``divergence/skipped_steps`` and
``divergence/rollbacks``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.optim import Optimizer

from gan_lab.errors import ConfigError
from gan_lab.lightning_internals import logger_writes
from gan_lab.training.grad_scale import active_grad_scaler
from gan_lab.training.recovery import Snapshot, TrainingStopped, check_policy, roll_back
from gan_lab.training.step_stats import StepStats, latest_scalar, write_scalars

log = logging.getLogger(__name__)

POLICIES = ("skip", "stop", "rollback")
LOSS_KEYS = ("loss/d", "loss/g")
NETS = ("G", "D")


def gradients_finite(optimizer: Optimizer) -> bool:
    """One fused norm per parameter list, one host sync (optimizers that cannot skip on device)."""
    return not bool(nonfinite_gradients(optimizer))


def nonfinite_gradients(optimizer: Optimizer) -> Tensor:
    """1.0 if any gradient holds an inf or NaN, else 0.0: a device tensor, no host sync."""
    grads = [
        p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None
    ]
    if not grads:
        return torch.zeros(())
    found = torch.zeros((), device=grads[0].device)
    # GradScaler's fused check: flags non-finite values while multiplying by 1 (a no-op)
    torch._amp_foreach_non_finite_check_and_unscale_(grads, found, torch.ones_like(found))
    return found


def skips_on_device(optimizer: Optimizer) -> bool:
    """Fused Adam/AdamW/SGD read ``optimizer.found_inf`` and drop the whole update when it is 1."""
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False))


@dataclass
class _Batch:
    """One batch's flags (device tensor: G grad, D grad, loss/d, loss/g) and where it ran."""

    values: Tensor
    where: str


class DivergenceGuard(L.Callback):
    def __init__(
        self,
        policy: str = "skip",
        max_consecutive_skips: int = 20,
        lr_factor: float = 0.5,
        max_rollbacks: int = 3,
        check_every_n_batches: int = 50,
    ) -> None:
        check_policy("callbacks.divergence_guard.policy", policy, POLICIES)
        if not 0.0 < lr_factor <= 1.0:
            raise ConfigError(
                "callbacks.divergence_guard.lr_factor", lr_factor, "must be in (0, 1], e.g. 0.5"
            )
        if not isinstance(check_every_n_batches, int) or check_every_n_batches < 1:
            raise ConfigError(
                "callbacks.divergence_guard.check_every_n_batches",
                check_every_n_batches,
                "must be an integer >= 1 (1 reads the flags on the host every batch)",
            )
        for key, count in (
            ("max_consecutive_skips", max_consecutive_skips),
            ("max_rollbacks", max_rollbacks),
        ):
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise ConfigError(
                    f"callbacks.divergence_guard.{key}", count, "must be an integer >= 0"
                )
        self.policy, self.lr_factor = policy, lr_factor
        self.max_consecutive_skips, self.max_rollbacks = max_consecutive_skips, max_rollbacks
        self.check_every_n_batches = check_every_n_batches
        self.nonfinite_steps = self.skipped_steps = self.rollbacks = 0
        self._consecutive = 0
        self._bad_this_batch: str | None = None
        self._snapshot: Snapshot | None = None
        self._grad_flags: dict[str, Tensor] = {}
        self._pending: list[_Batch] = []
        self._where_now = ""
        self._trainer: L.Trainer | None = None
        self._module: L.LightningModule | None = None

    # ------------------------------------------------------------------ detection
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._trainer, self._module = trainer, pl_module
        if self.policy == "rollback":
            self._snapshot = Snapshot(trainer, pl_module)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        self._where_now = self._where(trainer)
        self._grad_flags = {}

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer
    ) -> None:
        if active_grad_scaler(trainer) is not None:
            return  # fp16: the GradScaler skips steps with non-finite gradients and rescales
        net = "G" if optimizer is trainer.optimizers[0] else "D"
        found = nonfinite_gradients(optimizer)
        if skips_on_device(optimizer):
            optimizer.found_inf = found  # the fused kernel drops the update when found == 1
        elif found:  # a host read: this optimizer cannot skip on the device
            optimizer.zero_grad(set_to_none=True)  # the step that follows changes nothing
            getattr(pl_module, "skip_update", lambda _opt: None)(optimizer)  # no G step
        self._grad_flags[net] = found

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        self._pending.append(_Batch(self._batch_flags(trainer, pl_module), self._where_now))
        batch = trainer.fit_loop.epoch_loop.batch_progress.total.ready
        written = logger_writes(trainer)
        if written or batch % self.check_every_n_batches == 0:
            self._judge_pending(trainer, pl_module)
        if written:
            write_scalars(
                trainer,
                {
                    "divergence/nonfinite_steps": float(self.nonfinite_steps),
                    "divergence/skipped_steps": float(self.skipped_steps),
                    "divergence/rollbacks": float(self.rollbacks),
                },
            )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._judge_pending(trainer, pl_module)

    def _batch_flags(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Tensor:
        """This batch's gradient flags and losses as one device tensor (read later, in bulk)."""
        zero = torch.zeros((), device=pl_module.device)
        grads = [self._grad_flags.get(net, zero).to(zero.device) for net in NETS]
        stats = getattr(pl_module, "step_stats", None)
        if isinstance(stats, StepStats):
            losses = [
                stats[k].detach().float().reshape(()) if k in stats else zero for k in LOSS_KEYS
            ]
        else:  # another module: its logged losses, read now
            values = [latest_scalar(trainer, pl_module, k) for k in LOSS_KEYS]
            losses = [torch.tensor(0.0 if v is None else v, device=zero.device) for v in values]
        return torch.stack([*grads, *losses])

    def _judge_pending(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Read the flags of every batch since the last read (one transfer) and apply the policy."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        rows = torch.stack([b.values for b in pending]).tolist()
        rolled_back = False  # later bad batches of this read ran before the rollback: count only
        dropped_g = sum(1 for row in rows if row[0])  # G flags are set only when G stepped
        if dropped_g and skips_on_device(trainer.optimizers[0]):  # counted as G steps: take back
            getattr(pl_module, "forget_g_steps", lambda _n: None)(dropped_g)
        for batch, (g_bad, d_bad, *losses) in zip(pending, rows, strict=True):
            for net, bad in (("D", d_bad), ("G", g_bad)):
                if bad:
                    self._detected(batch.where, f"non-finite gradient of {net}")
                    self.skipped_steps += 1
            if self._bad_this_batch is None:
                for key, value in zip(LOSS_KEYS, losses, strict=True):
                    if not math.isfinite(value):
                        self._detected(batch.where, f"non-finite {key} ({value})")
            if self._bad_this_batch is None:
                self._consecutive = 0
            elif self.policy == "rollback" and not rolled_back:
                self._roll_back(trainer, pl_module, batch.where)
                rolled_back = True
            self._bad_this_batch = None

    # ------------------------------------------------------------------ policies
    def _where(self, trainer: L.Trainer) -> str:
        return f"generator step {trainer.global_step}, batch {trainer.fit_loop.epoch_loop.batch_progress.total.ready}"

    def _detected(self, where: str, what: str) -> None:
        if self._bad_this_batch is None:
            self.nonfinite_steps += 1
            self._consecutive += 1
        self._bad_this_batch = what
        hint = "lower model.optimizer_{g,d}.lr, set model.grad_clip_g/grad_clip_d, or use bf16/fp32 precision"
        if self.policy == "stop":
            raise TrainingStopped(
                f"training diverged: {what} at {where} (divergence policy=stop); {hint}"
            )
        if self._consecutive > self.max_consecutive_skips:
            raise TrainingStopped(
                f"training diverged: {what} in {self._consecutive} batches in a row at {where}; "
                f"skipping does not recover it; {hint}, or use callbacks.divergence_guard.policy=rollback"
            )
        if self._consecutive == 1:
            log.warning("%s at %s: update skipped (policy=%s)", what, where, self.policy)

    def _roll_back(self, trainer: L.Trainer, pl_module: L.LightningModule, where: str) -> None:
        if self.rollbacks >= self.max_rollbacks:
            raise TrainingStopped(
                f"training diverged again ({self._bad_this_batch}) at {where} after "
                f"{self.rollbacks} rollbacks; lower the learning rates or clip gradients"
            )
        source = roll_back(trainer, pl_module, self._snapshot, self.lr_factor)
        self.rollbacks += 1
        self._consecutive = 0
        log.warning(
            "%s at %s: rolled back to %s, learning rates x%g (rollback %d of %d)",
            self._bad_this_batch,
            where,
            source,
            self.lr_factor,
            self.rollbacks,
            self.max_rollbacks,
        )

    # ------------------------------------------------------------------ checkpointed counters
    def state_dict(self) -> dict[str, int]:
        if self._trainer is not None and self._module is not None:  # checkpoints: counters now
            self._judge_pending(self._trainer, self._module)
        return {
            "nonfinite_steps": self.nonfinite_steps,
            "skipped_steps": self.skipped_steps,
            "rollbacks": self.rollbacks,
        }

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.nonfinite_steps = int(state_dict.get("nonfinite_steps", 0))
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))
        self.rollbacks = int(state_dict.get("rollbacks", 0))
