"""DiffAugment (Zhao et al. 2020): differentiable augmentation of every image D sees.

Applied to real *and* fake images in both the D and the G step, so D never sees an
un-augmented image and G's gradient flows through the augmentation. Every transform draws its
random parameters per sample in one batched op (no Python loop over the batch). Images are in
[-1, 1]; translation and cutout fill with 0 (mid grey) and so stay in range, while the colour
transforms follow the paper and may leave it slightly (D does not need images in range).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor, nn

from gan_lab.errors import ConfigError


def _uniform(x: Tensor, low: float, high: float) -> Tensor:
    """One value per sample, broadcastable over (C, H, W)."""
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) * (high - low) + low


def brightness(x: Tensor) -> Tensor:
    """Add a per-sample offset in [-0.5, 0.5)."""
    return x + _uniform(x, -0.5, 0.5)


def saturation(x: Tensor) -> Tensor:
    """Scale each pixel's distance from its channel mean by a factor in [0, 2)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * _uniform(x, 0.0, 2.0) + mean


def contrast(x: Tensor) -> Tensor:
    """Scale each image's distance from its mean by a factor in [0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, 0.5, 1.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ``ratio`` of its size in x and y, filling the gap with zeros."""
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] + dy + max_dy  # (n, h, 1), padded coords
    cols = torch.arange(w, device=x.device)[None, None, :] + dx + max_dx  # (n, 1, w)
    padded = nn.functional.pad(x, [max_dx, max_dx, max_dy, max_dy]).permute(0, 2, 3, 1)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero one square of ``ratio`` times the image size per image, at a random centre."""
    n, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h, (n, 1, 1), device=x.device)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] - (cy - size_y // 2)
    cols = torch.arange(w, device=x.device)[None, None, :] - (cx - size_x // 2)
    inside = (rows >= 0) & (rows < size_y) & (cols >= 0) & (cols < size_x)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES: dict[str, Sequence[Callable[..., Tensor]]] = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


class DiffAugment(nn.Module):
    """Apply the transforms of each policy in order, e.g. ``policy=[color, translation, cutout]``."""

    def __init__(
        self,
        policy: Sequence[str] = ("color", "translation", "cutout"),
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        policy = list(policy)
        unknown = [p for p in policy if p not in POLICIES]
        if unknown or not policy:
            raise ConfigError(
                "model.augment.policy", policy, f"choose a non-empty list from {list(POLICIES)}"
            )
        for key, ratio in (
            ("translation_ratio", translation_ratio),
            ("cutout_ratio", cutout_ratio),
        ):
            if not 0.0 < ratio < 1.0:
                raise ConfigError(
                    f"model.augment.{key}", ratio, "must be in (0, 1), a fraction of the image size"
                )
        self.policy, self.translation_ratio, self.cutout_ratio = (
            policy,
            translation_ratio,
            cutout_ratio,
        )
        ratios = {translation: translation_ratio, cutout: cutout_ratio}
        self.transforms = [
            partial(t, ratio=ratios[t]) if t in ratios else t
            for name in policy
            for t in POLICIES[name]
        ]

    def forward(self, x: Tensor) -> Tensor:
        for transform in self.transforms:
            x = transform(x)
        return x.contiguous()

    def extra_repr(self) -> str:
        return f"policy={self.policy}, translation_ratio={self.translation_ratio}, cutout_ratio={self.cutout_ratio}"
