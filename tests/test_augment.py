"""DiffAugment keeps shapes, does what each transform promises per sample, and passes gradients."""

from __future__ import annotations

import pytest
import torch

from gan_lab.errors import ConfigError
from gan_lab.models.augment import (
    DiffAugment,
    brightness,
    contrast,
    cutout,
    saturation,
    translation,
)


def _images(n: int = 16, c: int = 3, size: int = 16) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize(
    "policy", [["color"], ["translation"], ["cutout"], ["color", "translation", "cutout"]]
)
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_and_dtype_are_kept(policy: list[str], channels: int) -> None:
    x = _images(c=channels)
    out = DiffAugment(policy)(x)
    assert out.shape == x.shape and out.dtype == x.dtype


def test_gradients_flow_and_match_autograd_numerics() -> None:
    aug = DiffAugment(["color", "translation", "cutout"])

    def fixed_draw(x: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(0)  # same random transforms on every evaluation
        return aug(x)

    x = _images(n=2, size=4).double().requires_grad_(True)  # small: gradcheck is per pixel
    assert torch.autograd.gradcheck(fixed_draw, (x,), fast_mode=True)
    fixed_draw(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def _shift(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[i, j] = img[i + dy, j + dx], zero outside."""
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    out[..., max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = img[
        ..., max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)
    ]
    return out


def test_translation_is_a_zero_filled_shift_within_the_ratio_drawn_per_sample() -> None:
    x = _images(n=32)
    torch.manual_seed(1)
    out = translation(x, ratio=0.125)  # up to 2 pixels of 16
    shifts = []
    for img, res in zip(x, out):
        found = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(_shift(img, dy, dx), res)
        ]
        assert found, "output is not a shift of at most 2 pixels"
        shifts.append(found[0])
    assert len(set(shifts)) > 5  # per-sample draws, not one shift for the batch
    assert out.min() >= -1 and out.max() <= 1


def test_cutout_zeroes_one_square_of_the_ratio_and_keeps_the_rest() -> None:
    x = _images(n=32) * 0.5 + 0.75  # strictly positive pixels, so zeros are cutout
    torch.manual_seed(2)
    out = cutout(x, ratio=0.5)
    zeroed = out == 0
    assert torch.equal(out[~zeroed], x[~zeroed])
    for mask in zeroed[:, 0]:  # same square in every channel
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert len(rows) <= 8 and len(cols) <= 8  # at most half the side, clipped at borders
        assert mask.sum() == len(rows) * len(cols)  # a filled rectangle
    assert zeroed.all(1).any() and zeroed.float().mean() < 0.25 + 1e-6


def test_colour_transforms_move_what_they_should_and_keep_what_they_should() -> None:
    x = _images()
    torch.manual_seed(3)
    shifted = brightness(x) - x  # one offset per image, in [-0.5, 0.5)
    per_image = shifted.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-6)
    assert per_image.abs().max() <= 0.5 and per_image[:, 0].std() > 0.1
    # saturation keeps each pixel's grey level (channel mean); contrast keeps each image's mean
    assert torch.allclose(saturation(x).mean(1), x.mean(1), atol=1e-5)
    assert torch.allclose(contrast(x).mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5)
    assert not torch.allclose(saturation(x), x) and not torch.allclose(contrast(x), x)


def test_real_and_fake_batches_get_independent_draws() -> None:
    x = _images(n=4)
    aug = DiffAugment(["translation", "cutout"])
    assert not torch.equal(aug(x), aug(x))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"policy": ["colour"]}, "model.augment.policy"),
        ({"policy": []}, "model.augment.policy"),
        ({"translation_ratio": 1.5}, "model.augment.translation_ratio"),
        ({"cutout_ratio": 0.0}, "model.augment.cutout_ratio"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        DiffAugment(**kwargs)
    assert info.value.key == key
