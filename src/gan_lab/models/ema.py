"""Generator EMA: an exponential moving average of G's weights, used for samples and metrics."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from gan_lab.errors import ConfigError


def half_life_steps(decay: float) -> float:
    """G steps after which an update's weight in the average has halved: ``decay ** h = 1/2``."""
    return math.log(0.5) / math.log(decay)


class GeneratorEMA(nn.Module):
    """``theta_ema <- d_t * theta_ema + (1 - d_t) * theta`` after every G step ``t`` past ``start_step``.

    Before ``start_step`` the average tracks G exactly (early weights are noise, averaging them
    only delays the average). Buffers (BatchNorm statistics) are averaged too.

    ``d_t = decay`` unless ``rampup`` is set: then the half-life is ``min(H, rampup * t)`` G steps,
    ``H`` the half-life of ``decay`` (StyleGAN2-ADA's ``ema_rampup``, 0.05 in its small-data
    configs). A long average then stays short while G is young and changes fast, and reaches its
    full length only after ``H / rampup`` steps. ``d_t`` depends on ``t`` alone, so it is exact on
    resume and needs no state.
    """

    def __init__(
        self,
        generator: nn.Module,
        decay: float = 0.999,
        start_step: int = 0,
        rampup: float | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ConfigError(
                "model.ema_decay",
                decay,
                "must be in (0, 1), e.g. 0.999; disable EMA with model.ema_decay=null",
            )
        if start_step < 0:
            raise ConfigError("model.ema_start_step", start_step, "must be >= 0")
        if rampup is not None and not 0.0 < rampup <= 1.0:
            raise ConfigError(
                "model.ema_rampup", rampup, "must be in (0, 1], e.g. 0.05, or null (no ramp)"
            )
        self.decay, self.start_step, self.rampup = decay, start_step, rampup
        # AveragedModel holds the copy and its counter: its state_dict keys are the checkpoints'
        self.averaged = AveragedModel(generator, use_buffers=True)
        self.averaged.requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        return self.averaged.module

    def decay_at(self, step: int) -> float:
        """The decay applied after G step ``step`` (1-based); 0 copies G (step 1 always does)."""
        if step <= max(self.start_step, 1):
            return 0.0
        if self.rampup is None:
            return self.decay
        return min(self.decay, 0.5 ** (1.0 / (self.rampup * step)))

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        """Call after G's ``step``-th update (1-based)."""
        ema = self.averaged.module
        mine = [*ema.parameters(), *ema.buffers()]
        theirs = [*generator.parameters(), *generator.buffers()]
        decay = self.decay_at(step)
        if decay == 0.0:
            # one fused copy of every parameter and buffer (state_dict() per step cost ~3% of a
            # small model's step)
            torch._foreach_copy_(mine, theirs)
            self.averaged.n_averaged.fill_(1)
            return
        pairs = list(zip(mine, theirs, strict=True))
        averaged = [(a, b) for a, b in pairs if a.is_floating_point()]
        torch._foreach_lerp_([a for a, _ in averaged], [b for _, b in averaged], 1.0 - decay)
        for a, b in pairs:  # integer buffers (BatchNorm's num_batches_tracked) are counters
            if not a.is_floating_point():
                a.copy_(b)
        self.averaged.n_averaged += 1

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        return self.averaged.module(*args, **kwargs)
