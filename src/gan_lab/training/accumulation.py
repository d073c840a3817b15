"""Gradient accumulation under manual optimization: one D or G update from N micro-batches.

Large-batch recipes (R3GAN trains CIFAR-10 at batch 512) must run on devices that hold only a
fraction of that batch. ``model.accumulate=N`` splits each rank's batch, and the noise drawn for
it, into N equal micro-batches, backpropagates ``loss_i / N`` after each one and steps the
optimizer once: the gradients sum to those of the whole batch's mean loss, so the update is the
one a single batch N times the micro-batch would give (same images, same noise; to float rounding).
Trainer's ``accumulate_grad_batches`` does not apply to manual optimization (Lightning raises), so
the module does it itself.

What stays a per-micro-batch quantity: BatchNorm's batch statistics (a D or G with BatchNorm
sees micro-batches, as with any accumulation), and the random draws of augmentation and of the
gradient penalty's interpolation points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

MicroStep = Callable[..., tuple[Tensor, Any]]


def micro_batches(n: int, *tensors: Tensor | None) -> list[tuple[Tensor | None, ...]]:
    """``tensors`` (same first dimension; ``None`` passes through) split into ``n`` equal chunks."""
    if n == 1:
        return [tensors]
    split = [t.chunk(n) if t is not None else (None,) * n for t in tensors]
    return list(zip(*split, strict=True))


def combined(parts: Sequence[Any]) -> Any:
    """One update's outputs from its micro-batches' (detached): batch tensors concatenated, scalars
    averaged (the micro-batches are equal in size, so this is the whole batch's mean), dicts and
    tuples combined entry by entry."""
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, Tensor):
        return torch.cat(parts) if first.dim() else torch.stack(parts).mean()
    if isinstance(first, dict):
        return {key: combined([part[key] for part in parts]) for key in first}
    if isinstance(first, tuple):
        return tuple(combined(column) for column in zip(*parts, strict=True))
    return first


def accumulate(
    n: int,
    step: MicroStep,
    backward: Callable[[Tensor], None],
    *tensors: Tensor | None,
) -> Any:
    """Run ``step`` on each micro-batch of ``tensors`` and ``backward(loss / n)`` after it.

    ``step(*chunk)`` returns ``(loss, outputs)``; the outputs (detached tensors, dicts, tuples) of
    all micro-batches come back :func:`combined`. With ``n == 1`` this is one ``step`` and one
    ``backward(loss)``, exactly the unaccumulated update.
    """
    outputs = []
    for chunk in micro_batches(n, *tensors):
        loss, out = step(*chunk)
        backward(loss / n if n > 1 else loss)
        outputs.append(out)
    return combined(outputs)


def loss_and_detached(
    forward: Callable[..., Tensor], *inputs: Tensor | None
) -> tuple[Tensor, Tensor]:
    """A :data:`MicroStep` from a loss function: the loss, and itself detached as the output."""
    loss = forward(*inputs)
    return loss, loss.detach()
