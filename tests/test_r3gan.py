"""R3GAN-style networks: shapes, conditioning, parameter counts, fix-up init, penalties, training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.nets.contract import NetworkArgumentError
from gan_lab.models.nets.r3gan import R3GANDiscriminator, R3GANGenerator
from gan_lab.models.nets.r3gan_layers import LEAKY_GAIN, InvertedBottleneck, LowpassResample
from gan_lab.models.regularizers import r1_penalty
from gan_lab.train import train
from gan_lab.trained_model import load_trained_gan

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

SMALL = {"width": 16, "blocks_per_stage": 1}


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_shapes_range_and_conditioning(size: int, num_classes: int) -> None:
    torch.manual_seed(0)
    g = R3GANGenerator(latent_dim=8, image_size=size, num_classes=num_classes, **SMALL)
    d = R3GANDiscriminator(image_size=size, num_classes=num_classes, **SMALL)
    z, y = torch.randn(4, 8), (torch.tensor([0, 1, 2, 3]) if num_classes else None)
    images = g(z, y)
    assert images.shape == (4, 3, size, size)
    assert images.abs().max() <= 1 and images.std() > 0.05  # in range, and not a constant image
    logits = d(images, y)
    assert logits.shape == (4,) and torch.isfinite(logits).all()
    assert g.num_classes == d.num_classes == num_classes
    if num_classes:  # the label changes what G draws and how D scores it
        other = torch.tensor([5, 6, 7, 8])
        assert not torch.allclose(g(z, other), images)
        assert not torch.allclose(d(images, other), logits)
        with pytest.raises(ValueError, match="labels"):
            g(z, None)


def _expected_generator_params(width: int, blocks: int, stages: int, latent: int) -> int:
    expanded = width * 2  # expansion 2, groups of 16 channels (or one group when narrower)
    per_group = min(16, expanded)
    block = width * expanded + expanded + expanded * per_group * 9 + expanded + expanded * width
    basis = width * 16 + latent * width
    return stages * blocks * block + basis + width * 3  # + the bias-free 1x1 conv to RGB


@pytest.mark.parametrize(("width", "blocks"), [(16, 1), (32, 2), (64, 1)])
def test_generator_parameter_count_is_the_architecture(width: int, blocks: int) -> None:
    g = R3GANGenerator(latent_dim=8, width=width, blocks_per_stage=blocks)
    assert _count(g) == _expected_generator_params(width, blocks, stages=4, latent=8)


def test_paper_cifar10_preset_size_and_width_scaling() -> None:
    # the defaults are R3GAN's CIFAR-10 preset: 768 channels, 2 blocks x 4 stages, cardinality 96
    g, d = R3GANGenerator(), R3GANDiscriminator()
    assert _count(g) == _expected_generator_params(768, 2, stages=4, latent=64)
    assert 20.6e6 < _count(g) < 20.8e6 and 20.6e6 < _count(d) < 20.8e6
    assert g.stages[1].layers[1].spatial.groups == 96
    # the 1x1 convs grow with width^2, the grouped convs (fixed group size) with width:
    # doubling the width multiplies G and D by between 2 and 4, nearer 4 the wider they are
    for cls in (R3GANGenerator, R3GANDiscriminator):
        counts = [_count(cls(width=w)) for w in (32, 64, 512, 1024)]
        narrow, wide = counts[1] / counts[0], counts[3] / counts[2]
        assert 2 < narrow < wide < 4, (cls.__name__, counts)


def test_no_batchnorm_or_spectral_norm_anywhere() -> None:
    for net in (
        R3GANGenerator(num_classes=10, **SMALL),
        R3GANDiscriminator(num_classes=10, **SMALL),
    ):
        for module in net.modules():
            assert not isinstance(module, nn.modules.batchnorm._BatchNorm | nn.GroupNorm)
            assert not hasattr(module, "parametrizations")


def test_fixup_init_blocks_start_as_identity_with_depth_scaled_branches() -> None:
    torch.manual_seed(0)
    block = InvertedBottleneck(64, expansion=2, group_channels=16, kernel=3, total_blocks=16)
    x = torch.randn(2, 64, 8, 8)
    assert torch.equal(block(x), x)  # the last conv of the branch is zero
    # He init times the leaky-ReLU gain times L^-1/4: std = gain * 16^-0.25 / sqrt(fan_in)
    expected = LEAKY_GAIN * 16**-0.25 / math.sqrt(64)
    assert block.expand.weight.std().item() == pytest.approx(expected, rel=0.05)
    expected_spatial = LEAKY_GAIN * 16**-0.25 / math.sqrt(16 * 9)
    assert block.spatial.weight.std().item() == pytest.approx(expected_spatial, rel=0.05)
    assert block.spatial.groups == 8


def test_lowpass_resampling_keeps_flat_images_flat_and_halves_or_doubles_size() -> None:
    flat = torch.full((1, 2, 8, 8), 3.0)
    up, down = LowpassResample(up=True)(flat), LowpassResample(up=False)(flat)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    # away from the zero-padded border the [1, 3, 3, 1] filter keeps the mean exactly
    assert torch.allclose(up[..., 2:-2, 2:-2], flat[..., :12, :12].new_full((1, 2, 12, 12), 3.0))
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.full((1, 2, 2, 2), 3.0))


def test_r1_double_backward_reaches_every_discriminator_weight() -> None:
    torch.manual_seed(0)
    d = R3GANDiscriminator(num_classes=10, **SMALL)
    with torch.no_grad():  # leave the zero init, so every branch carries gradient
        for module in d.modules():
            if isinstance(module, InvertedBottleneck):
                module.project.weight.normal_(0, 0.05)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    penalty = r1_penalty(d, x, y)
    penalty.backward()
    # biases only move the leaky ReLUs' kinks, so a piecewise-linear D's input gradient, and R1,
    # do not depend on them (almost everywhere): only weights get R1 gradient
    grads = {name: p.grad for name, p in d.named_parameters() if not name.endswith("bias")}
    assert penalty.item() > 0 and len(grads) > 10
    missing = [name for name, grad in grads.items() if grad is None or grad.abs().sum() == 0]
    assert not missing, missing


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"image_size": 28}, "image_size"),
        ({"stage_widths": [16, 16]}, "stage_widths"),
        ({"blocks_per_stage": 0}, "blocks_per_stage"),
        ({"width": 24, "group_channels": 20}, "group_channels"),
        ({"kernel_size": 2}, "kernel_size"),
        ({"num_classes": -1}, "num_classes"),
        ({"channels": 2}, "channels"),
    ],
)
def test_bad_settings_name_the_argument(kwargs: dict, argument: str) -> None:
    for cls in (R3GANGenerator, R3GANDiscriminator):
        with pytest.raises(NetworkArgumentError) as info:
            cls(**{**SMALL, **kwargs})
        assert info.value.argument == argument, cls


def test_a_bad_setting_through_gan_train_names_the_config_key(make_cfg) -> None:
    cfg = make_cfg(
        "model/generator=r3gan",
        "model/discriminator=r3gan",
        "data.image_size=32",
        "model.discriminator.group_channels=5",
    )
    with pytest.raises(ConfigError) as info:
        train(cfg)
    assert info.value.key == "model.discriminator.group_channels"


def test_stage_lists_set_each_resolution_and_d_mirrors_g() -> None:
    g = R3GANGenerator(latent_dim=8, image_size=64, stage_widths=[32, 32, 16, 16, 8])
    d = R3GANDiscriminator(image_size=64, stage_widths=[32, 32, 16, 16, 8])
    assert g.to_image.in_channels == 8 and d.from_image.out_channels == 8
    assert R3GANGenerator(image_size=64, width=32).to_image.in_channels == 16  # halved above 32
    assert d(g(torch.randn(2, 8))).shape == (2,)


def test_two_generator_steps_through_gan_train(make_cfg) -> None:
    cfg = make_cfg(
        "model/generator=r3gan",
        "model/discriminator=r3gan",
        "model.generator.width=8",
        "model.discriminator.width=8",
        "model.generator.blocks_per_stage=1",
        "model.discriminator.blocks_per_stage=1",
        "model/regularizer=r1",
        "model.regularizer.r1_interval=1",
        "data/source=synthetic",
        "data.image_size=32",
        "data.channels=3",
        "data.source.num_samples=32",
        "data.batch_size=8",
        "trainer.max_steps=2",
        "~callbacks.sample_grid",
        "logger=csv",
    )
    metrics = train(cfg)
    assert metrics["g_step"] == 2
    assert all(math.isfinite(metrics[k]) for k in ("loss/d", "loss/g", "penalty/r1"))
    loaded = load_trained_gan(str(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"))
    assert type(loaded.module.generator).__name__ == "R3GANGenerator"
    assert loaded.module.generate(torch.randn(3, 64)).shape == (3, 3, 32, 32)
