"""Gradient clipping per network under manual optimization (Trainer's gradient_clip_val raises).

The norm is measured before clipping, so a logged ``grad_norm`` shows what the optimizer would
have seen without the clip.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import Tensor, nn

from gan_lab.training.grad_scale import loss_scale


def clip_and_measure(
    net: nn.Module, max_norm: float | None, logged: bool, trainer: L.Trainer | None
) -> Tensor:
    """Total L2 gradient norm before clipping; clips in place when ``max_norm`` is set.

    Without clipping the norm is only a logged diagnostic, so it is computed only when logged.
    """
    if max_norm is None and not logged:
        return torch.zeros(())
    params = [p for p in net.parameters() if p.grad is not None]
    if not params:
        return torch.zeros(())
    # under fp16 the gradients here still carry the GradScaler's loss scale (Lightning unscales
    # inside optimizer.step(), fused optimizers in their kernel), so limit and norm scale too
    scale = loss_scale(trainer)
    limit = max_norm * scale if max_norm is not None else math.inf
    norm = torch.nn.utils.clip_grad_norm_(params, limit, error_if_nonfinite=False)
    return (norm / scale).detach()
