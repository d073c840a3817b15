"""Weight comparisons for the equality tests (DDP, accumulation): the same maths, the same weights."""

from __future__ import annotations

import torch
from torch import nn


def strip_batchnorm(net: nn.Module) -> None:
    """BatchNorm's batch statistics depend on how a batch is split; the equalities need nets without it."""
    for name, child in net.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(net, name, nn.Identity())
        else:
            strip_batchnorm(child)


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
