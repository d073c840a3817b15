"""Checks that a generator, a discriminator, a loss and a regularizer make a sensible GAN.

Each network checks its own shape constraints; what only the pair can know is checked here,
when the LightningModule is built (before any data loads), as a one-line ConfigError.
"""

from __future__ import annotations

import logging

from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.losses import AdversarialLoss
from gan_lab.models.nets.layers import has_spectral_norm

log = logging.getLogger(__name__)


def _has_batch_norm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def check_compatible(
    generator: nn.Module,
    discriminator: nn.Module,
    loss: AdversarialLoss,
    penalized: bool,
    compiled: bool = False,
) -> None:
    """Raise ConfigError for pairs that cannot train; warn for pairs that usually diverge."""
    g_classes = int(getattr(generator, "num_classes", 0))
    d_classes = int(getattr(discriminator, "num_classes", 0))
    if g_classes != d_classes:
        raise ConfigError(
            "model.discriminator.num_classes",
            d_classes,
            f"must equal model.generator.num_classes={g_classes}: conditional G and D come as a pair "
            "(model/generator=resnet_cbn with model/discriminator=resnet_proj), or neither is conditional",
        )
    if penalized and compiled:
        raise ConfigError(
            "model.compile_networks",
            True,
            "gradient penalties need double backward, which torch.compile does not support; "
            "set model.compile_networks=false or drop model/regularizer",
        )
    if penalized and _has_batch_norm(discriminator):
        raise ConfigError(
            "model.regularizer",
            type(discriminator).__name__,
            "gradient penalties are per sample but this discriminator has BatchNorm, which mixes the "
            "batch; use model.discriminator.batch_norm=false or model/discriminator=resnet",
        )
    if loss.needs_lipschitz and not penalized and not has_spectral_norm(discriminator):
        log.warning(
            "model/loss=%s without a Lipschitz constraint on D usually diverges; add "
            "model/regularizer=gradient_penalty or spectral norm (model.discriminator.spectral_norm=true)",
            loss.name,
        )
