"""Sliced Wasserstein distance between two equal-size sets (Rabin et al. 2011; Karras et al. 2018).

Projections on fixed random unit directions, sorted, compared as 1-D Wasserstein-1 distances
and averaged. Used on whole images in pixel space by the sweep callback
(:class:`gan_lab.callbacks.sample_distance.SampleDistance`): it needs no feature network and
compares float tensors of equal size drawn from fixed noise, so it is a function, not one of the
registered suite metrics (those read uint8 images through a feature extractor).
"""

from __future__ import annotations

import torch
from torch import Tensor


def sliced_wasserstein(x: Tensor, y: Tensor, num_projections: int = 128, seed: int = 0) -> Tensor:
    """Mean over random unit directions of W1 between the projections of two equal-size sets.

    ``x`` and ``y`` are (N, ...) with the same shape; directions come from ``seed`` so that
    values of different runs are comparable.
    """
    if x.shape != y.shape:
        raise ValueError(
            f"sets must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    x, y = x.flatten(1).float(), y.flatten(1).float()
    gen = torch.Generator().manual_seed(seed)
    directions = torch.randn(x.shape[1], num_projections, generator=gen).to(x.device)
    directions = directions / directions.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x @ directions, dim=0)
    py, _ = torch.sort(y @ directions, dim=0)
    return (px - py).abs().mean()
