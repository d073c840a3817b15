"""Generator EMA: an exponential moving average of G's weights, used for samples and metrics."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from gan_lab.errors import ConfigError


def _ema_update(
    ema_params: list[torch.Tensor],
    params: list[torch.Tensor],
    num_averaged: torch.Tensor,
    *,
    decay: float,
) -> None:
    """torch's EMA update as a module-level function: DDP spawn must pickle the module."""
    get_ema_multi_avg_fn(decay)(ema_params, params, num_averaged)


class GeneratorEMA(nn.Module):
    """``theta_ema <- decay * theta_ema + (1 - decay) * theta`` after every G step past ``start_step``.

    Before ``start_step`` the average tracks G exactly (early weights are noise, averaging them
    only delays the average). Buffers (BatchNorm statistics) are averaged too.
    """

    def __init__(self, generator: nn.Module, decay: float = 0.999, start_step: int = 0) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ConfigError(
                "model.ema_decay",
                decay,
                "must be in (0, 1), e.g. 0.999; disable EMA with model.ema_decay=null",
            )
        if start_step < 0:
            raise ConfigError("model.ema_start_step", start_step, "must be >= 0")
        self.decay, self.start_step = decay, start_step
        self.averaged = AveragedModel(
            generator, multi_avg_fn=partial(_ema_update, decay=decay), use_buffers=True
        )
        self.averaged.requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        return self.averaged.module

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        """Call after G's ``step``-th update (1-based)."""
        if step <= self.start_step:
            # one fused copy of every parameter and buffer (state_dict() per step cost ~3% of a
            # small model's step)
            ema = self.averaged.module
            torch._foreach_copy_(
                [*ema.parameters(), *ema.buffers()], [*generator.parameters(), *generator.buffers()]
            )
            self.averaged.n_averaged.fill_(1)
        else:
            self.averaged.update_parameters(generator)

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        return self.averaged.module(*args, **kwargs)
