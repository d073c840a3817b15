"""Building blocks of the R3GAN-style networks (Huang et al. 2024): plain, normalisation-free layers.

Initialisation follows R3GAN's fix-up style: He (MSR) init everywhere, the branch convs of a
residual block scaled by L^-1/4 (L = blocks in the network) and its last conv set to zero, so
every block starts as the identity and the variance stays bounded however deep the network is.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lab.models.nets.contract import NetworkArgumentError

LEAKY_SLOPE = 0.2
LEAKY_GAIN = math.sqrt(2 / (1 + LEAKY_SLOPE**2))  # keeps the variance of a leaky ReLU's output


def msr_init_(weight: Tensor, gain: float = 1.0) -> None:
    """He init, N(0, gain^2 / fan_in), with fan_in = input channels per group x kernel area."""
    fan_in = weight.shape[1] * weight[0][0].numel()
    with torch.no_grad():
        weight.normal_(0.0, gain / math.sqrt(fan_in))


def conv(
    in_ch: int, out_ch: int, kernel: int, gain: float, groups: int = 1, bias: bool = False
) -> nn.Conv2d:
    """A same-padding conv with He init scaled by ``gain`` (0: all zeros); biases start at 0."""
    layer = nn.Conv2d(in_ch, out_ch, kernel, padding=(kernel - 1) // 2, groups=groups, bias=bias)
    if gain == 0:
        nn.init.zeros_(layer.weight)
    else:
        msr_init_(layer.weight, gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def leaky_relu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, LEAKY_SLOPE)


class InvertedBottleneck(nn.Module):
    """``x + conv1x1(lrelu(grouped_conv(lrelu(conv1x1_expand(x)))))``, the last conv zero-initialised."""

    def __init__(
        self,
        channels: int,
        expansion: int,
        group_channels: int,
        kernel: int,
        total_blocks: int,
    ) -> None:
        super().__init__()
        expanded = channels * expansion
        per_group = min(group_channels, expanded)
        if expanded % per_group:
            raise NetworkArgumentError(
                "group_channels",
                group_channels,
                f"must divide the expanded width {expanded} (width x expansion) of every stage",
            )
        # 3 linear layers per branch: the variance-scaling exponent is -1 / (2 * 3 - 2) = -1/4
        gain = LEAKY_GAIN * total_blocks**-0.25
        # R3GAN adds a bias right before each activation; the conv's own bias is the same function
        # in one pass less over the (expanded, largest) activations
        self.expand = conv(channels, expanded, 1, gain, bias=True)
        self.spatial = conv(
            expanded, expanded, kernel, gain, groups=expanded // per_group, bias=True
        )
        self.project = conv(expanded, channels, 1, gain=0.0)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.project(leaky_relu(self.spatial(leaky_relu(self.expand(x)))))


class LowpassResample(nn.Module):
    """2x up- or down-sampling through the separable [1, 3, 3, 1] / 8 filter, per channel."""

    def __init__(self, up: bool) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
        kernel = torch.outer(taps, taps)
        self.register_buffer("kernel", (kernel / kernel.sum())[None, None], persistent=False)
        self.up = up

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        weight = self.kernel.to(x.dtype).expand(channels, 1, 4, 4)
        if self.up:  # zero-stuffing keeps 1 pixel in 4: gain 4 restores the mean
            return F.conv_transpose2d(x, 4 * weight, stride=2, padding=1, groups=channels)
        return F.conv2d(x, weight, stride=2, padding=1, groups=channels)


class Stage(nn.Module):
    """One resolution: residual blocks, with the resampling transition before (G) or after (D)."""

    def __init__(
        self,
        channels: int,
        blocks: int,
        transition: nn.Module,
        transition_first: bool,
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        body = [InvertedBottleneck(channels, **block_kwargs) for _ in range(blocks)]
        self.layers = nn.Sequential(
            *([transition, *body] if transition_first else [*body, transition])
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def channel_change(in_ch: int, out_ch: int) -> nn.Module:
    return conv(in_ch, out_ch, 1, gain=1.0) if in_ch != out_ch else nn.Identity()


class GenerativeBasis(nn.Module):
    """z -> a learned 4x4 basis per channel, each scaled by a linear function of z."""

    def __init__(self, in_features: int, channels: int) -> None:
        super().__init__()
        self.basis = nn.Parameter(torch.randn(channels, 4, 4))
        self.linear = nn.Linear(in_features, channels, bias=False)
        msr_init_(self.linear.weight)

    def forward(self, z: Tensor) -> Tensor:
        return self.basis[None] * self.linear(z)[:, :, None, None]


class DiscriminativeBasis(nn.Module):
    """4x4 feature map -> a depthwise 4x4 conv (one weight per channel and pixel) -> linear."""

    def __init__(self, channels: int, out_features: int) -> None:
        super().__init__()
        self.basis = nn.Conv2d(channels, channels, 4, groups=channels, bias=False)
        self.linear = nn.Linear(channels, out_features, bias=False)
        msr_init_(self.basis.weight)
        msr_init_(self.linear.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.basis(x).flatten(1))
