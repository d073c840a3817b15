"""The zoo as the configs define it: every loss and network YAML, and what each network supports.

Tests parametrise over these lists, so a new YAML in ``configs/model/{loss,generator,
discriminator}/`` gets test cases with no test edited, and the sizes a network is tested at come
from the network class's ``supports``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from gan_lab.models.losses import AdversarialLoss
from gan_lab.train import CONFIG_PATH

# (name, image_size, channels): MNIST at its native 28 and padded-to-power-of-two 32, CIFAR-10
DATASETS = (("mnist28", 28, 1), ("mnist32", 32, 1), ("cifar10", 32, 3))


def names(group: str, config_dir: Path | str = CONFIG_PATH) -> list[str]:
    """The options of ``configs/model/<group>/``: one per YAML file."""
    return sorted(p.stem for p in (Path(config_dir) / "model" / group).glob("*.yaml"))


def node(group: str, name: str, config_dir: Path | str = CONFIG_PATH) -> DictConfig:
    """The YAML's keys, with the options it extends (``defaults: [resnet, _self_]``) merged in."""
    cfg = OmegaConf.load(Path(config_dir) / "model" / group / f"{name}.yaml")
    parents = [d for d in cfg.pop("defaults", []) if isinstance(d, str) and d != "_self_"]
    merged = [node(group, parent, config_dir) for parent in parents]
    return OmegaConf.merge(*merged, cfg)


def build_loss(name: str, config_dir: Path | str = CONFIG_PATH) -> AdversarialLoss:
    return hydra.utils.instantiate(node("loss", name, config_dir))


@dataclass(frozen=True)
class Network:
    group: str  # generator | discriminator
    name: str
    config: DictConfig

    @property
    def cls(self) -> type:
        return hydra.utils.get_class(self.config._target_)

    @property
    def conditional(self) -> bool:
        # unresolved: a conditional YAML reads ${data.num_classes}, an unconditional one says 0
        return OmegaConf.to_container(self.config).get("num_classes", 0) != 0

    def supports(self, image_size: int, channels: int) -> bool:
        return self.cls.supports(image_size, channels) is None

    def tiny(self) -> list[str]:
        """Overrides that shrink the network to a few channels, when it has a ``width``."""
        return [f"model.{self.group}.width=8"] if "width" in self.config else []


def networks(group: str, config_dir: Path | str = CONFIG_PATH) -> list[Network]:
    return [Network(group, n, node(group, n, config_dir)) for n in names(group, config_dir)]


Combo = tuple[str, str, str, tuple[str, int, int]]


def pairs(config_dir: Path | str = CONFIG_PATH) -> list[tuple[Network, Network]]:
    """Every (generator, discriminator) that can work together: both conditional or neither."""
    return [
        (g, d)
        for g, d in product(
            networks("generator", config_dir), networks("discriminator", config_dir)
        )
        if g.conditional == d.conditional
    ]


def all_combos(config_dir: Path | str = CONFIG_PATH) -> list[Combo]:
    """Every meant-to-work (generator, discriminator, loss, dataset shape)."""
    return [
        (g.name, d.name, loss, data)
        for (g, d), data, loss in product(pairs(config_dir), DATASETS, names("loss", config_dir))
        if g.supports(*data[1:]) and d.supports(*data[1:])
    ]


def fast_combos(config_dir: Path | str = CONFIG_PATH) -> list[Combo]:
    """One run per pair (and at least one per loss), each on the dataset shape met least so far,
    so every loss, pair and dataset shape is met at least once (the full product is slow)."""
    losses, network_pairs = names("loss", config_dir), pairs(config_dir)
    used = dict.fromkeys(DATASETS, 0)
    out: list[Combo] = []
    for i in range(max(len(network_pairs), len(losses))):
        g, d = network_pairs[i % len(network_pairs)]
        sized = [data for data in DATASETS if g.supports(*data[1:]) and d.supports(*data[1:])]
        if sized:
            data = min(sized, key=used.__getitem__)
            used[data] += 1
            out.append((g.name, d.name, losses[i % len(losses)], data))
    return out


def tiny_overrides(g: str, d: str, config_dir: Path | str = CONFIG_PATH) -> list[str]:
    return [
        *Network("generator", g, node("generator", g, config_dir)).tiny(),
        *Network("discriminator", d, node("discriminator", d, config_dir)).tiny(),
    ]
