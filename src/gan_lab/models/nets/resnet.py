"""SNGAN-style ResNets (Miyato et al. 2018) for 32x32 and 64x64, optionally class-conditional.

Conditional G uses class-conditional BatchNorm; conditional D uses the projection head of
Miyato & Koyama (2018). ``width`` is the channel count at the 4x4 end of each network. At 32x32
every block keeps it (the paper's CIFAR-10 layout); at 64x64 channels halve per block in G and
double per block in D (the paper's 64x64 layout, where width is 1024).
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lab.models.nets.checks import (
    channels_reason,
    first_reason,
    require_num_classes,
    require_positive,
    require_supported,
)
from gan_lab.models.nets.contract import NetworkArgumentError
from gan_lab.models.nets.layers import ConditionalBatchNorm2d, ProjectionHead, SizedNetwork

SUPPORTED_SIZES = (32, 64)


def _supports(image_size: int, channels: int) -> str | None:
    size_reason = (
        None
        if image_size in SUPPORTED_SIZES
        else f"the ResNet networks are built for {list(SUPPORTED_SIZES)}; use 32 (MNIST is "
        "resized from 28) or the mlp networks"
    )
    return first_reason(channels_reason(channels), size_reason)


class _ResNetFamily(SizedNetwork):
    """What the generator and discriminator of this family share: supported sizes."""

    @classmethod
    def supports(cls, image_size: int, channels: int) -> str | None:
        """32x32 and 64x64, grey or RGB."""
        return _supports(image_size, channels)


def sngan_init(net: nn.Module) -> None:
    """Xavier-uniform as in the SNGAN code: gain sqrt(2) inside residual branches, 1 elsewhere."""
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            gain = math.sqrt(2) if ".residual." in f".{name}." else 1.0
            nn.init.xavier_uniform_(module.weight, gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class _Norm(nn.Module):
    """BatchNorm, class-conditional when ``num_classes > 0``."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.conditional = num_classes > 0
        self.bn = (
            ConditionalBatchNorm2d(channels, num_classes)
            if self.conditional
            else nn.BatchNorm2d(channels)
        )

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        return self.bn(x, y) if self.conditional else self.bn(x)


class GeneratorBlock(nn.Module):
    """BN-ReLU-up-conv3-BN-ReLU-conv3, plus an upsampled 1x1-conv shortcut."""

    def __init__(self, in_ch: int, out_ch: int, num_classes: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = _Norm(in_ch, num_classes), _Norm(out_ch, num_classes)
        self.residual = nn.ModuleDict(
            {
                "conv1": nn.Conv2d(in_ch, out_ch, 3, 1, 1),
                "conv2": nn.Conv2d(out_ch, out_ch, 3, 1, 1),
            }
        )
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        h = F.interpolate(F.relu(self.norm1(x, y)), scale_factor=2, mode="nearest")
        h = self.residual["conv1"](h)
        h = self.residual["conv2"](F.relu(self.norm2(h, y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DiscriminatorBlock(nn.Module):
    """(ReLU)-conv3-ReLU-conv3-(avgpool), plus a 1x1-conv shortcut when shape changes.

    The first block (``first=True``) takes raw images: no ReLU before its first conv, and its
    shortcut pools before the 1x1 conv (the "optimized block" of the SNGAN code).
    """

    def __init__(self, in_ch: int, out_ch: int, downsample: bool, first: bool = False) -> None:
        super().__init__()
        self.downsample, self.first = downsample, first
        self.residual = nn.ModuleDict(
            {
                "conv1": nn.Conv2d(in_ch, out_ch, 3, 1, 1),
                "conv2": nn.Conv2d(out_ch, out_ch, 3, 1, 1),
            }
        )
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if (downsample or in_ch != out_ch) else None

    def forward(self, x: Tensor) -> Tensor:
        h = x if self.first else F.relu(x)
        h = self.residual["conv2"](F.relu(self.residual["conv1"](h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self._shortcut(x)

    def _shortcut(self, x: Tensor) -> Tensor:
        if self.shortcut is None:
            return x
        if self.first:
            return self.shortcut(F.avg_pool2d(x, 2))
        x = self.shortcut(x)
        return F.avg_pool2d(x, 2) if self.downsample else x


class ResNetGenerator(_ResNetFamily):
    """z -> linear 4x4 x width -> up-blocks -> BN-ReLU-conv3 -> tanh."""

    def __init__(
        self,
        latent_dim: int = 128,
        image_size: int = 32,
        channels: int = 3,
        width: int = 256,
        num_classes: int = 0,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        require_positive("latent_dim", latent_dim)
        require_positive("width", width)
        require_supported(type(self), image_size, channels)
        self.latent_dim = latent_dim
        self.num_classes = 0 if num_classes == 0 else require_num_classes(num_classes)
        n_up = int(math.log2(image_size)) - 2
        halve = image_size > 32
        if halve and width < 2**n_up:
            raise NetworkArgumentError(
                "width", width, f"at {image_size}x{image_size} must be >= {2**n_up}"
            )
        self.width = width
        self.linear = nn.Linear(latent_dim, 4 * 4 * width)
        chans = [width // 2**k if halve else width for k in range(n_up + 1)]
        self.blocks = nn.ModuleList(
            GeneratorBlock(a, b, self.num_classes) for a, b in pairwise(chans)
        )
        self.out_bn = nn.BatchNorm2d(chans[-1])
        self.out_conv = nn.Conv2d(chans[-1], channels, 3, 1, 1)
        self.finish(sngan_init, spectral_norm)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes and y is None:
            raise ValueError("a class-conditional generator needs labels y, got None")
        h = self.linear(z).view(z.shape[0], self.width, 4, 4)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class ResNetDiscriminator(_ResNetFamily):
    """Images -> down-blocks -> ReLU -> global sum pool -> (projection) head -> logits (N,)."""

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 3,
        width: int = 128,
        num_classes: int = 0,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        require_positive("width", width)
        require_supported(type(self), image_size, channels)
        self.num_classes = 0 if num_classes == 0 else require_num_classes(num_classes)
        if image_size == 32:  # 32 -> 16 -> 8 -> 8 -> 8, constant width
            plan = [
                (channels, width, True),
                (width, width, True),
                (width, width, False),
                (width, width, False),
            ]
        else:  # 64 -> 32 -> 16 -> 8 -> 4 -> 2, doubling up to width
            n_down = int(math.log2(image_size)) - 1
            if width < 2 ** (n_down - 1):
                raise NetworkArgumentError(
                    "width",
                    width,
                    f"at {image_size}x{image_size} must be >= {2 ** (n_down - 1)}",
                )
            chans = [channels] + [width // 2 ** (n_down - 1 - k) for k in range(n_down)]
            plan = [(a, b, True) for a, b in pairwise(chans)]
        self.blocks = nn.Sequential(
            *(DiscriminatorBlock(a, b, down, first=i == 0) for i, (a, b, down) in enumerate(plan))
        )
        self.head = ProjectionHead(width, self.num_classes)
        self.finish(sngan_init, spectral_norm)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))
        return self.head(h, y if self.num_classes else None)
