"""Discriminator regularizers: WGAN-GP gradient penalty and R1, both on D's input gradients.

Both differentiate D's output with respect to its input and then backpropagate through that
gradient (double backward), so D must be built from ops that support it; all nets here do.
They are per-sample penalties, so a D with BatchNorm (which mixes samples) is refused upstream.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gan_lab.errors import ConfigError

Critic = Callable[[Tensor, Tensor | None], Tensor]


def _input_gradients(discriminator: Critic, x: Tensor, y: Tensor | None) -> Tensor:
    """d sum(D(x)) / dx, kept in the graph so the penalty can be backpropagated."""
    x = x.detach().requires_grad_(True)
    scores = discriminator(x, y).float()
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return grad.float().flatten(1)


def gradient_penalty(
    discriminator: Critic, real: Tensor, fake: Tensor, y: Tensor | None = None, target: float = 1.0
) -> Tensor:
    """``E[(||grad D(x_hat)||_2 - target)^2]`` on random points between real and fake (Gulrajani et al. 2017)."""
    alpha = torch.rand(
        real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype
    )
    x_hat = alpha * real.detach() + (1 - alpha) * fake.detach()
    grad = _input_gradients(discriminator, x_hat, y)
    return (grad.norm(2, dim=1) - target).pow(2).mean()


def r1_penalty(discriminator: Critic, real: Tensor, y: Tensor | None = None) -> Tensor:
    """``E[||grad D(x)||^2]`` on real data (Mescheder et al. 2018), without the gamma/2 factor."""
    return _input_gradients(discriminator, real, y).pow(2).sum(dim=1).mean()


class DiscriminatorRegularizer:
    """The penalty added to D's loss: ``gp_weight * GP + r1_gamma / 2 * R1 + r2_gamma / 2 * R2``.

    R2 is R1 on the fake images (Roth et al. 2017's "R2"; with R1, the zero-centred pair that makes
    R3GAN's RpGAN loss converge locally, Huang et al. 2024). R1 and R2 are lazy (Karras et al.
    2020): computed on every ``r1_interval``-th D step only, with their weights multiplied by the
    interval so the average strength is unchanged.
    """

    def __init__(
        self,
        gp_weight: float = 0.0,
        r1_gamma: float = 0.0,
        r1_interval: int = 1,
        r2_gamma: float = 0.0,
    ) -> None:
        for key, value in (
            ("model.regularizer.gp_weight", gp_weight),
            ("model.regularizer.r1_gamma", r1_gamma),
            ("model.regularizer.r2_gamma", r2_gamma),
        ):
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(key, value, "must be a number >= 0 (0 disables it)")
        if not isinstance(r1_interval, int) or r1_interval < 1:
            raise ConfigError(
                "model.regularizer.r1_interval",
                r1_interval,
                "must be an integer >= 1 (1 = every D step)",
            )
        self.gp_weight, self.r1_gamma, self.r2_gamma = (
            float(gp_weight),
            float(r1_gamma),
            float(r2_gamma),
        )
        self.r1_interval = r1_interval

    # per-sample means: the terms of N equal micro-batches average to the whole batch's
    splits_over_micro_batches = True

    @property
    def needs_input_gradients(self) -> bool:
        """Double backward through D: refused with BatchNorm in D and with compiled networks."""
        return self.gp_weight > 0 or self.r1_gamma > 0 or self.r2_gamma > 0

    def __call__(
        self,
        discriminator: Critic,
        real: Tensor,
        fake: Tensor,
        y: Tensor | None,
        d_step: int,
        real_logits: Tensor | None = None,
        fake_logits: Tensor | None = None,
        y_fake: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Total penalty for D's ``d_step``-th update (0-based), and the raw terms for logging.

        ``y`` labels the reals (and GP's interpolates), ``y_fake`` the fakes (default: ``y``).
        ``real_logits`` / ``fake_logits`` (D's outputs of this step) are for regularizers of D's
        outputs (models/lecam.py); the gradient penalties recompute D on their own inputs.
        """
        total = torch.zeros((), device=real.device)
        logs: dict[str, Tensor] = {}
        if self.gp_weight > 0:
            gp = gradient_penalty(discriminator, real, fake, y)
            total = total + self.gp_weight * gp
            logs["penalty/gp"] = gp.detach()
        if d_step % self.r1_interval:
            return total, logs
        lazy = 0.5 * self.r1_interval
        if self.r1_gamma > 0:
            r1 = r1_penalty(discriminator, real, y)
            total = total + lazy * self.r1_gamma * r1
            logs["penalty/r1"] = r1.detach()
        if self.r2_gamma > 0:
            r2 = r1_penalty(discriminator, fake, y if y_fake is None else y_fake)
            total = total + lazy * self.r2_gamma * r2
            logs["penalty/r2"] = r2.detach()
        return total, logs
