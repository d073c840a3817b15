"""Adversarial losses on logits / raw critic scores, one (d_loss, g_loss) pair per family.

All functions take the discriminator's raw outputs and cast them to fp32 first: softplus of a
bf16 logit loses the small losses that matter once D gets good.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_lab.errors import ConfigError


@dataclass(frozen=True)
class AdversarialLoss:
    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]  # (real_logits, fake_logits) -> scalar
    g_loss: Callable[[Tensor], Tensor]  # fake_logits -> scalar
    outputs_probability: bool  # sigmoid(D) is a probability: log D(x) as one


def _d_logistic(real: Tensor, fake: Tensor) -> Tensor:
    # -log sigmoid(r) - log(1 - sigmoid(f)), written with softplus for stability.
    return F.softplus(-real.float()).mean() + F.softplus(fake.float()).mean()


def _g_non_saturating(fake: Tensor) -> Tensor:
    return F.softplus(-fake.float()).mean()  # -log sigmoid(f)


def _g_minimax(fake: Tensor) -> Tensor:
    return -F.softplus(fake.float()).mean()  # log(1 - sigmoid(f))


def _d_hinge(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1.0 - real.float()).mean() + F.relu(1.0 + fake.float()).mean()


def _g_critic(fake: Tensor) -> Tensor:
    return -fake.float().mean()


def _d_least_squares(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * ((real.float() - 1.0).pow(2).mean() + fake.float().pow(2).mean())


def _g_least_squares(fake: Tensor) -> Tensor:
    return 0.5 * (fake.float() - 1.0).pow(2).mean()


def _d_wasserstein(real: Tensor, fake: Tensor) -> Tensor:
    return fake.float().mean() - real.float().mean()


LOSSES: dict[str, AdversarialLoss] = {
    loss.name: loss
    for loss in (
        AdversarialLoss("minimax", _d_logistic, _g_minimax, True),
        AdversarialLoss("non_saturating", _d_logistic, _g_non_saturating, True),
        AdversarialLoss("hinge", _d_hinge, _g_critic, False),
        AdversarialLoss("lsgan", _d_least_squares, _g_least_squares, False),
        AdversarialLoss("wasserstein", _d_wasserstein, _g_critic, False),
    )
}


def get_loss(name: str) -> AdversarialLoss:
    if name not in LOSSES:
        raise ConfigError("model.loss.name", name, f"choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


def discriminator_score(logits: Tensor, loss: AdversarialLoss) -> Tensor:
    """What to plot as D(x): the mean probability for logistic losses, the mean score otherwise."""
    logits = logits.detach().float()
    return torch.sigmoid(logits).mean() if loss.outputs_probability else logits.mean()
