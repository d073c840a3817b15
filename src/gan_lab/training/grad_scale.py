"""fp16 loss scaling as the module and the callbacks see it.

Under ``trainer.precision=16-mixed`` Lightning multiplies each loss by a GradScaler's scale before
backward, so until ``optimizer.step()`` the gradients are scaled (fused optimizers unscale inside
their kernel, never before). A non-finite gradient is then routine: the scaler skips that step
and lowers its scale. Code that clips, measures or checks gradients must account for both.
"""

from __future__ import annotations

from typing import Any

import lightning as L


def active_grad_scaler(trainer: L.Trainer | None) -> Any | None:
    """The enabled ``torch.amp.GradScaler`` of a 16-mixed run, else None (fp32, bf16)."""
    plugin = getattr(trainer, "precision_plugin", None) if trainer is not None else None
    scaler = getattr(plugin, "scaler", None)
    return scaler if scaler is not None and scaler.is_enabled() else None


def loss_scale(trainer: L.Trainer | None) -> float:
    """The factor the gradients carry right now: the scaler's scale, or 1."""
    scaler = active_grad_scaler(trainer)
    return float(scaler.get_scale()) if scaler is not None else 1.0
