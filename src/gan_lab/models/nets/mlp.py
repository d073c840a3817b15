"""The fully connected GAN of Goodfellow et al. (2014), in the layout of the common MNIST seed."""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from gan_lab.models.nets.checks import (
    channels_reason,
    first_reason,
    positive_size_reason,
    require_positive,
    require_supported,
)
from gan_lab.models.nets.layers import apply_spectral_norm


class MLPGenerator(nn.Module):
    """z -> 128 -> 256 -> 512 -> 1024 -> C*H*W, LeakyReLU + BatchNorm, tanh output."""

    def __init__(
        self, latent_dim: int = 100, image_size: int = 28, channels: int = 1, width: int = 128
    ) -> None:
        super().__init__()
        require_positive("latent_dim", latent_dim)
        require_supported(type(self), image_size, channels)
        self.latent_dim, self.num_classes = latent_dim, 0
        self.image_shape = (channels, image_size, image_size)
        widths = [width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, widths[0]),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for w_in, w_out in itertools.pairwise(widths):
            layers += [
                nn.Linear(w_in, w_out),
                nn.BatchNorm1d(w_out, momentum=0.2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers += [nn.Linear(widths[-1], math.prod(self.image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    @classmethod
    def supports(cls, image_size: int, channels: int) -> str | None:
        """Fully connected: any positive size, grey or RGB."""
        return first_reason(channels_reason(channels), positive_size_reason(image_size))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)


class MLPDiscriminator(nn.Module):
    """C*H*W -> 512 -> 256 -> 1 logit, LeakyReLU."""

    def __init__(
        self, image_size: int = 28, channels: int = 1, width: int = 256, spectral_norm: bool = False
    ) -> None:
        super().__init__()
        require_supported(type(self), image_size, channels)
        self.num_classes = 0
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * image_size * image_size, width * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width * 2, width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width, 1),
        )
        if spectral_norm:
            apply_spectral_norm(self)

    @classmethod
    def supports(cls, image_size: int, channels: int) -> str | None:
        """Fully connected: any positive size, grey or RGB."""
        return first_reason(channels_reason(channels), positive_size_reason(image_size))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).squeeze(1)
