"""Every shipped config composes and instantiates; overrides swap the parts they name."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from gan_lab.models.gan_module import GANModule
from gan_lab.preflight import validate_config
from gan_lab.train import CONFIG_PATH

EXPERIMENTS = sorted(p.stem for p in (Path(CONFIG_PATH) / "experiment").glob("*.yaml"))


def test_the_required_experiments_exist() -> None:
    assert {"mnist_mlp_gan", "mnist_dcgan", "cifar10_dcgan"} <= set(EXPERIMENTS)
    # the small-budget recipes of docs/results.md, named by outside checks
    assert {"mnist_budget", "cifar10_budget"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_instantiates(experiment: str, make_cfg) -> None:
    cfg = make_cfg(f"experiment={experiment}")
    validate_config(cfg)
    OmegaConf.resolve(cfg)  # every interpolation resolves
    model = hydra.utils.instantiate(cfg.model)
    datamodule = hydra.utils.instantiate(cfg.data)  # no data is loaded before fit
    assert isinstance(model, GANModule)
    assert datamodule.image_size == cfg.data.image_size
    images = model.generate(model.fixed_z[:2], model.fixed_y[:2])
    assert images.shape == (2, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    assert images.min() >= -1 and images.max() <= 1


def test_default_experiment_is_the_mnist_mlp_gan(make_cfg) -> None:
    cfg = make_cfg()
    assert cfg.data.source._target_.endswith("sources.MNIST")
    assert cfg.model.generator._target_.endswith("MLPGenerator")
    assert cfg.model.loss._target_.endswith("losses.NonSaturatingLoss")
    assert cfg.model.optimizer_g.lr == pytest.approx(2e-4)
    assert list(cfg.model.optimizer_g.betas) == [0.5, 0.999]


def test_networks_swap_by_override(make_cfg) -> None:
    cfg = make_cfg("experiment=mnist_dcgan", "model/generator=mlp", "model/discriminator=mlp")
    model = hydra.utils.instantiate(cfg.model)
    assert type(model.generator).__name__ == "MLPGenerator"
    assert type(model.discriminator).__name__ == "MLPDiscriminator"
    assert cfg.data.image_size == 32  # the experiment's data settings stay


def test_cifar10_folder_override_keeps_the_experiment(make_cfg) -> None:
    cfg = make_cfg("experiment=cifar10_dcgan", "data.path=/somewhere/cifar10-jpg")
    assert cfg.data.source._target_.endswith("sources.CIFAR10")
    assert cfg.data.path == "/somewhere/cifar10-jpg"
    assert (cfg.data.image_size, cfg.data.channels) == (32, 3)


@pytest.mark.parametrize("image_size", [32, 64])
def test_dcgan_depth_follows_image_size(image_size: int, make_cfg) -> None:
    cfg = make_cfg("experiment=cifar10_dcgan", f"data.image_size={image_size}")
    model = hydra.utils.instantiate(cfg.model)
    out = model.generate(model.fixed_z[:2])
    assert out.shape[-1] == image_size
    assert model.discriminator(out).shape == (2,)
