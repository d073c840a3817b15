"""DCGAN (Radford et al. 2016) for any power-of-two size from 16 to 256 (32 and 64 are the usual).

The stride-2 layers are ``nn.Conv2d`` / ``nn.ConvTranspose2d`` with a faster CPU weight gradient
next to the 4x4 map (``small_map_conv``); parameters and maths are the plain layers'.
"""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.models.nets.checks import (
    channels_reason,
    first_reason,
    power_of_two_reason,
    require_positive,
    require_supported,
)
from gan_lab.models.nets.init import dcgan_init
from gan_lab.models.nets.layers import SizedNetwork
from gan_lab.models.nets.small_map_conv import SmallMapConv2d, SmallMapConvTranspose2d

SIZES = (16, 256)  # smallest and largest power-of-two image size


def _supports(image_size: int, channels: int) -> str | None:
    return first_reason(channels_reason(channels), power_of_two_reason(image_size, *SIZES))


class _DCGANFamily(SizedNetwork):
    """What the generator and discriminator of this family share: supported sizes."""

    @classmethod
    def supports(cls, image_size: int, channels: int) -> str | None:
        """Powers of two from 16 to 256, grey or RGB."""
        return _supports(image_size, channels)


def _doublings(image_size: int) -> int:
    """Number of 2x up/down-samplings between the 4x4 feature map and ``image_size``."""
    return image_size.bit_length() - 1 - 2


class DCGANGenerator(_DCGANFamily):
    """z -> 4x4 x (width * 2^k) -> ... stride-2 transposed convs ... -> C x size x size, tanh."""

    def __init__(
        self,
        latent_dim: int = 100,
        image_size: int = 64,
        channels: int = 3,
        width: int = 64,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        require_positive("latent_dim", latent_dim)
        require_supported(type(self), image_size, channels)
        n_up = _doublings(image_size)
        self.latent_dim, self.num_classes = latent_dim, 0
        ch = width * 2 ** (n_up - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, ch, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(inplace=True),
        ]
        for _ in range(n_up - 1):
            layers += [
                SmallMapConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(inplace=True),
            ]
            ch //= 2
        layers += [SmallMapConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.finish(dcgan_init, spectral_norm)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net[1:](self._project(z))

    def _project(self, z: torch.Tensor) -> torch.Tensor:
        """The first layer (a 4x4 transposed convolution of a 1x1 image) as one matrix product.

        On a 1x1 input that convolution is ``z @ W`` with ``W`` reshaped to latent x (4 * 4 * ch),
        but convolution kernels run it far below the matmul rate (on an Intel Xeon with AMX, bf16,
        batch 128: 15 GFLOP/s forward, 5 for its weight gradient; docs/benchmarks.md). Same weights (``net[0]``, its spectral norm included), same
        maths; the output comes out in the layout of ``net[0]``'s weights (NHWC strides when the
        network is channels_last), as the convolution's would.
        """
        weight = self.net[0].weight  # (latent, ch, 4, 4); spectral norm's is computed here
        latent, ch, kh, kw = weight.shape
        if weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
            out = z @ weight.permute(0, 2, 3, 1).reshape(latent, kh * kw * ch)
            return out.view(-1, kh, kw, ch).permute(0, 3, 1, 2)
        return (z @ weight.reshape(latent, ch * kh * kw)).view(-1, ch, kh, kw)


class DCGANDiscriminator(_DCGANFamily):
    """C x size x size -> stride-2 convs with LeakyReLU (BatchNorm after the first) -> 4x4 -> 1 logit.

    With BatchNorm the convolutions carry no bias (BN's shift replaces it, as in the paper). Without
    it (e.g. the spectrally normalised D) they do: a bias-free LeakyReLU network is positively
    homogeneous, D(a x) = a D(x), so its score of a faint image is a scaled copy of its score of
    the bright one, and it scores a flat grey image (x = 0) 0 whatever it has learned.
    ``bias`` set to True or False overrides that choice.
    """

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        width: int = 64,
        batch_norm: bool = True,
        spectral_norm: bool = False,
        bias: bool | None = None,
    ) -> None:
        super().__init__()
        require_supported(type(self), image_size, channels)
        n_down = _doublings(image_size)
        self.num_classes = 0
        if bias is None:
            bias = not batch_norm
        layers: list[nn.Module] = [
            SmallMapConv2d(channels, width, 4, 2, 1, bias=bias),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        ch = width
        for _ in range(n_down - 1):
            norm: nn.Module = nn.BatchNorm2d(ch * 2) if batch_norm else nn.Identity()
            layers += [
                SmallMapConv2d(ch, ch * 2, 4, 2, 1, bias=bias),
                norm,
                nn.LeakyReLU(0.2, inplace=True),
            ]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, 4, 1, 0, bias=bias)]
        self.net = nn.Sequential(*layers)
        self.finish(dcgan_init, spectral_norm)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).flatten()
