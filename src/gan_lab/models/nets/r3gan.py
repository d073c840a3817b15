"""Normalisation-free ResNets in the style of R3GAN (Huang et al. 2024, "The GAN is dead; long
live the GAN! A Modern GAN Baseline"), for 32x32 and 64x64, optionally class-conditional.

The paper's modernised StyleGAN2 (config E): inverted-bottleneck residual blocks with grouped
convolutions and biased leaky ReLUs, no BatchNorm (it mixes samples, which per-sample penalties
cannot have) and no spectral norm (RpGAN's R1/R2 penalties regularise D), fix-up style
initialisation, [1, 3, 3, 1] low-pass resampling, a learned 4x4 basis at each end. Conditioning
as in R3GAN: G concatenates a class embedding to z; D's head outputs a vector that is projected
onto the class's embedding (an inner product, no unconditional term).

``width`` is the channel count of every stage up to 32x32 (halved per doubling above, as in the
paper's FFHQ-64 preset); ``stage_widths`` / ``blocks_per_stage`` set each stage from 4x4 up.
One deviation: G ends in tanh, because every generator here returns images in [-1, 1] (R3GAN
leaves its output unbounded).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from itertools import pairwise
from typing import Any

import torch
from torch import Tensor, nn

from gan_lab.models.nets.checks import (
    channels_reason,
    first_reason,
    require_num_classes,
    require_positive,
    require_supported,
)
from gan_lab.models.nets.contract import NetworkArgumentError
from gan_lab.models.nets.layers import SizedNetwork
from gan_lab.models.nets.r3gan_layers import (
    DiscriminativeBasis,
    GenerativeBasis,
    LowpassResample,
    Stage,
    channel_change,
    conv,
)

SUPPORTED_SIZES = (32, 64)


class _R3GANFamily(SizedNetwork):
    """What the generator and discriminator of this family share: supported sizes."""

    @classmethod
    def supports(cls, image_size: int, channels: int) -> str | None:
        """32x32 and 64x64, grey or RGB."""
        size_reason = (
            None
            if image_size in SUPPORTED_SIZES
            else f"the R3GAN networks are built for {list(SUPPORTED_SIZES)}; use 32 (MNIST is "
            "resized from 28)"
        )
        return first_reason(channels_reason(channels), size_reason)


def stage_plan(
    image_size: int, width: int, stage_widths: Sequence[int] | None, blocks: int | Sequence[int]
) -> tuple[list[int], list[int]]:
    """Channels and residual blocks per stage, from 4x4 up to ``image_size`` (already checked)."""
    resolutions = [4 * 2**k for k in range(int(math.log2(image_size)) - 1)]
    n = len(resolutions)
    if stage_widths is None:
        require_positive("width", width)
        widths = [max(1, width * 32 // max(r, 32)) for r in resolutions]
    else:
        widths = list(stage_widths)
        if len(widths) != n or not all(isinstance(w, int) and w > 0 for w in widths):
            raise NetworkArgumentError(
                "stage_widths",
                stage_widths,
                f"give {n} positive channel counts, one per resolution {resolutions} (or null)",
            )
    counts = [blocks] * n if isinstance(blocks, int) else list(blocks)
    if len(counts) != n or not all(isinstance(b, int) and b >= 1 for b in counts):
        raise NetworkArgumentError(
            "blocks_per_stage",
            blocks,
            f"give an integer >= 1, or {n} of them, one per resolution {resolutions}",
        )
    return widths, counts


@dataclass(frozen=True)
class StagePlan:
    """The arguments G and D share: one owner, so one YAML list configures both networks.

    ``width``: channels of every stage up to 32x32 (halved per doubling above); ``stage_widths``:
    or one count per stage from 4x4 up; ``blocks_per_stage``: one integer or one per stage;
    ``expansion`` / ``group_channels`` / ``kernel_size``: each inverted bottleneck's shape.
    """

    width: int = 768
    stage_widths: Sequence[int] | None = None
    blocks_per_stage: int | Sequence[int] = 2
    expansion: int = 2
    group_channels: int = 16
    kernel_size: int = 3

    @classmethod
    def of(cls, arguments: dict[str, Any]) -> StagePlan:
        """The plan from a network's keyword arguments; an unknown one is named."""
        known = {f.name for f in fields(cls)}
        for name, value in arguments.items():
            if name not in known:
                raise NetworkArgumentError(
                    name, value, f"not an R3GAN argument; use {sorted(known)}"
                )
        return cls(**arguments)

    def layout(self, image_size: int) -> tuple[list[int], list[int], dict[str, Any]]:
        """Channels and blocks per stage from 4x4 up, and every residual block's options."""
        widths, blocks = stage_plan(
            image_size, self.width, self.stage_widths, self.blocks_per_stage
        )
        require_positive("expansion", self.expansion)
        require_positive("group_channels", self.group_channels)
        kernel = self.kernel_size
        if not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
            raise NetworkArgumentError(
                "kernel_size", kernel, "must be an odd integer >= 1 (3 in R3GAN)"
            )
        options = {
            "expansion": self.expansion,
            "group_channels": self.group_channels,
            "kernel": kernel,
            "total_blocks": sum(blocks),
        }
        return widths, blocks, options


def _classes(num_classes: int) -> int:
    return 0 if num_classes == 0 else require_num_classes(num_classes)


class R3GANGenerator(_R3GANFamily):
    """z (+ class embedding) -> 4x4 basis -> [up-sample, blocks] per stage -> 1x1 conv -> tanh."""

    def __init__(
        self,
        latent_dim: int = 64,
        image_size: int = 32,
        channels: int = 3,
        num_classes: int = 0,
        embedding_dim: int | None = None,
        **plan: Any,
    ) -> None:
        """``plan``: the :class:`StagePlan` arguments (width, stage_widths, blocks_per_stage, ...)."""
        super().__init__()
        require_positive("latent_dim", latent_dim)
        require_supported(type(self), image_size, channels)
        widths, blocks, options = StagePlan.of(plan).layout(image_size)
        self.latent_dim, self.num_classes = latent_dim, _classes(num_classes)
        embed = (embedding_dim or latent_dim) if self.num_classes else 0
        self.embed = nn.Embedding(self.num_classes, embed) if self.num_classes else None
        if self.embed is not None:  # He init of a linear map on one-hot labels
            nn.init.normal_(self.embed.weight, 0.0, 1 / math.sqrt(self.num_classes))
        basis = GenerativeBasis(latent_dim + embed, widths[0])
        stages = [Stage(widths[0], blocks[0], basis, transition_first=True, **options)]
        for (w_in, w_out), n in zip(pairwise(widths), blocks[1:]):
            up = nn.Sequential(channel_change(w_in, w_out), LowpassResample(up=True))
            stages.append(Stage(w_out, n, up, transition_first=True, **options))
        self.stages = nn.Sequential(*stages)
        self.to_image = conv(widths[-1], channels, 1, gain=1.0)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            if y is None:
                raise ValueError("a class-conditional generator needs labels y, got None")
            z = torch.cat([z, self.embed(y).to(z.dtype)], dim=1)
        return torch.tanh(self.to_image(self.stages(z)))


class R3GANDiscriminator(_R3GANFamily):
    """Images -> 1x1 conv -> [blocks, down-sample] per stage -> 4x4 basis -> logit / projection.

    ``stage_widths`` and ``blocks_per_stage`` are listed from 4x4 up, as for G, so one list
    configures both networks; D runs them backwards.
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 3,
        num_classes: int = 0,
        **plan: Any,
    ) -> None:
        """``plan``: the :class:`StagePlan` arguments, as for the generator."""
        super().__init__()
        require_supported(type(self), image_size, channels)
        widths, blocks, options = StagePlan.of(plan).layout(image_size)
        widths, blocks = widths[::-1], blocks[::-1]
        self.num_classes = _classes(num_classes)
        self.from_image = conv(channels, widths[0], 1, gain=1.0)
        stages = []
        for (w_in, w_out), n in zip(pairwise(widths), blocks):
            down = nn.Sequential(LowpassResample(up=False), channel_change(w_in, w_out))
            stages.append(Stage(w_in, n, down, transition_first=False, **options))
        features = widths[-1] if self.num_classes else 1
        head = DiscriminativeBasis(widths[-1], features)
        stages.append(Stage(widths[-1], blocks[-1], head, transition_first=False, **options))
        self.stages = nn.Sequential(*stages)
        self.embed = nn.Embedding(self.num_classes, features) if self.num_classes else None
        if self.embed is not None:  # R3GAN: He init with an extra 1/sqrt(features) gain
            nn.init.normal_(self.embed.weight, 0.0, 1 / math.sqrt(self.num_classes * features))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.stages(self.from_image(x))
        if self.embed is None:
            return h.squeeze(1)
        if y is None:
            raise ValueError("a projection discriminator needs class labels y, got None")
        return (h * self.embed(y).to(h.dtype)).sum(dim=1)
