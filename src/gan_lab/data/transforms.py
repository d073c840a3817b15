"""Whole-batch transforms of uint8 image tensors: resize, channel conversion, the [-1, 1] range
and the horizontal flip. Applied to a whole dataset once, or to a batch on the device, never
per sample through PIL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gan_lab.data.sources import ImageSet


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 NCHW (or CHW) images, rounded back to uint8."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    batched = images if images.ndim == 4 else images[None]
    # In chunks: a whole dataset as float32 would need 4x its uint8 size (2.4 GB for CIFAR-10 at 64px).
    out = torch.cat(
        [
            F.interpolate(
                chunk.float(),
                size=(size, size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
            for chunk in batched.split(1024)
        ]
    )
    return out if images.ndim == 4 else out[0]


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey -> RGB by repetition, RGB -> grey by ITU-R 601 luma."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels")


def to_model_shape(image_set: ImageSet, image_size: int, channels: int) -> ImageSet:
    images = convert_channels(resize_uint8(image_set.images, image_size), channels)
    return ImageSet(images.contiguous(), image_set.labels, image_set.class_names)


def uint8_to_float(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range of a tanh generator."""
    return images.to(dtype).div_(127.5).sub_(1.0)


def random_hflip(images: torch.Tensor) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2: one draw per image, whole batch at once."""
    flip = torch.rand(images.shape[0], device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def float_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8, rounding (not truncating) as the FID protocol does."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
