"""Building blocks shared by the networks: spectral norm, conditional BatchNorm, projection head."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

# Layers whose weight is a linear map: what spectral normalisation constrains.
SN_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def apply_spectral_norm(net: nn.Module, n_power_iterations: int = 1) -> nn.Module:
    """Spectral-normalise every weight layer of ``net`` in place (Miyato et al. 2018).

    Call after weight init: the parametrization keeps the initialised weight as ``original``.
    One power iteration per forward pass, as in the paper (the estimate is refined across steps).
    """
    for module in list(net.modules()):
        if isinstance(module, SN_LAYERS) and not has_spectral_norm(module):
            dim = 1 if isinstance(module, nn.ConvTranspose2d) else 0
            spectral_norm(module, n_power_iterations=n_power_iterations, dim=dim)
    return net


def has_spectral_norm(net: nn.Module) -> bool:
    """True if any layer of ``net`` (or ``net`` itself) has a spectrally normalised weight."""
    return any("weight" in getattr(m, "parametrizations", {}) for m in net.modules())


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up per class (de Vries et al. 2017).

    Gains start at 1 and biases at 0, so an untrained conditional G behaves like a plain-BN G.
    """

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        out = self.bn(x)
        return self.gain(y)[:, :, None, None] * out + self.bias(y)[:, :, None, None]


class ProjectionHead(nn.Module):
    """``logit = w . h + embed(y) . h`` (Miyato & Koyama 2018): the class enters as an inner product.

    ``num_classes=0`` leaves only the linear term: an unconditional head.
    """

    def __init__(self, features: int, num_classes: int = 0) -> None:
        super().__init__()
        self.linear = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features) if num_classes > 0 else None
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        if self.embed is not None:
            nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, h: Tensor, y: Tensor | None = None) -> Tensor:
        logits = self.linear(h).squeeze(1)
        if self.embed is None:
            return logits
        if y is None:
            raise ValueError("a projection discriminator needs class labels y, got None")
        return logits + torch.sum(self.embed(y) * h, dim=1)


class SizedNetwork(nn.Module):
    """Base of a network family (a G and its D) that shares supported sizes and initialisation.

    Subclasses set ``supports`` for the family once; ``finish`` runs the family's weight init and
    then, when asked, spectral normalisation (after init: SN's power iteration starts from the
    initialised weights).
    """

    @classmethod
    def supports(cls, image_size: int, channels: int) -> str | None:
        raise NotImplementedError

    def finish(self, init: Callable[[nn.Module], None], spectral_norm: bool) -> None:
        init(self)
        if spectral_norm:
            apply_spectral_norm(self)
