"""The hand-written GAN loop that gan-lab replaces: the baseline of the benchmarks.

Two recipes over the *same* G and D classes as gan-lab (``gan_lab.models.nets``):

- ``classic``: what every GAN tutorial writes (the PyTorch DCGAN tutorial, the PyTorch-GAN MNIST
  seed): a torchvision dataset with per-sample PIL transforms (Resize, ToTensor, Normalize), a
  shuffling DataLoader, fp32, one G forward per step whose fakes serve both the D and the G update.
- ``plain``: gan-lab's step written by hand (fresh noise for the G update, EMA of G, fp32 by
  default), fed by gan-lab's data path. Against gan-lab at identical settings it exposes the
  framework overhead (Lightning, logging, hooks) and nothing else.

Run directly to train the classic recipe for a wall-clock budget (used by bench_quality.py):

    GAN_DATA_DIR=/path/to/data python scripts/classic_loop.py --setup dcgan32 --seconds 600 --out g.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
DATA_DIR = Path(os.environ.get("GAN_DATA_DIR", "data"))


@dataclass(frozen=True)
class Setup:
    """One benchmarked network pair on one dataset: a gan-lab experiment and the seed's loader."""

    name: str
    dataset: str  # mnist | cifar10
    overrides: tuple[str, ...]  # gan-train overrides that build the same networks and data
    image_size: int
    channels: int
    batch_size: int
    num_workers: int  # the tutorial's DataLoader workers


SETUPS = {
    # PyTorch DCGAN tutorial: 64x64, batch 128, 2 DataLoader workers.
    "dcgan64": Setup(
        "dcgan64", "cifar10", ("experiment=cifar10_dcgan", "data.image_size=64"), 64, 3, 128, 2
    ),
    "dcgan32": Setup("dcgan32", "cifar10", ("experiment=cifar10_dcgan",), 32, 3, 128, 2),
    # the CIFAR-10 budget recipe (DCGAN-32 without BatchNorm in D, RpGAN + R1/R2, batch 32)
    "cifar10_budget": Setup(
        "cifar10_budget", "cifar10", ("experiment=cifar10_budget",), 32, 3, 32, 2
    ),
    "dcgan32_mnist": Setup("dcgan32_mnist", "mnist", ("experiment=mnist_dcgan",), 32, 1, 128, 2),
    # PyTorch-GAN gan.py: MNIST 28x28, batch 64, DataLoader defaults (no workers).
    "mlp": Setup("mlp", "mnist", ("experiment=mnist_mlp_gan",), 28, 1, 64, 0),
    # host overhead: the MNIST MLP experiment with networks so small (a few thousand weights)
    # that a step is almost all Python, hooks and kernel launches, as small GANs are on a GPU
    "overhead": Setup(
        "overhead",
        "mnist",
        (
            "experiment=mnist_mlp_gan",
            "model.generator.latent_dim=8",
            "model.generator.width=4",
            "model.discriminator.width=4",
            "data.batch_size=16",
        ),
        28,
        1,
        16,
        0,
    ),
}


# DCGAN-64 at batch 64, the batch of the DCGAN-64 target in docs/benchmarks.md
SETUPS["dcgan64_b64"] = dataclasses.replace(
    SETUPS["dcgan64"],
    name="dcgan64_b64",
    overrides=(*SETUPS["dcgan64"].overrides, "data.batch_size=64"),
    batch_size=64,
)


def compose(setup: Setup, *extra: str, output_dir: str = "/tmp/gan_lab_bench") -> DictConfig:
    """The config ``gan-train <setup overrides> <extra>`` would run, reading data from DATA_DIR."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gan_lab.train import CONFIG_PATH

    data = [f"data.path={DATA_DIR / 'cifar10-jpg'}"] if setup.dataset == "cifar10" else []
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return hydra_compose(
            "train",
            overrides=[
                *setup.overrides,
                *data,
                f"paths.data_dir={DATA_DIR}",
                f"paths.output_dir={output_dir}",
                *extra,
            ],
        )


def networks(setup: Setup) -> tuple[nn.Module, nn.Module]:
    """Exactly the G and D that gan-lab builds for this setup."""
    import hydra

    cfg = compose(setup)
    return hydra.utils.instantiate(cfg.model.generator), hydra.utils.instantiate(
        cfg.model.discriminator
    )


def torchvision_loader(setup: Setup, data_dir: Path = DATA_DIR) -> torch.utils.data.DataLoader:
    """The tutorials' input pipeline: decode + transform every image in Python, every epoch."""
    from torchvision import datasets, transforms

    normalize = transforms.Normalize([0.5] * setup.channels, [0.5] * setup.channels)
    pipeline = transforms.Compose(
        [
            transforms.Resize(setup.image_size),
            transforms.CenterCrop(setup.image_size),
            transforms.ToTensor(),
            normalize,
        ]
    )
    if setup.dataset == "mnist":
        ds = datasets.MNIST(str(data_dir), train=True, transform=pipeline)
    else:
        ds = datasets.ImageFolder(str(data_dir / "cifar10-jpg" / "train"), transform=pipeline)
    return torch.utils.data.DataLoader(
        ds,
        batch_size=setup.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=setup.num_workers,
        persistent_workers=setup.num_workers > 0,
    )


def forever(loader: torch.utils.data.DataLoader) -> Iterator[torch.Tensor]:
    while True:
        for images, _ in loader:
            yield images


class PlainGAN:
    """A non-saturating GAN trained by a hand-written loop (no Lightning)."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        *,
        recipe: str = "classic",
        bf16: bool = False,
        channels_last: bool = False,
        ema_decay: float | None = None,
        optimizers: tuple[OptimizerFactory, OptimizerFactory] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if recipe not in ("classic", "plain"):
            raise ValueError(f"recipe must be classic or plain, got {recipe!r}")
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.device = torch.device(device)
        self.G = generator.to(self.device, memory_format=layout)
        self.D = discriminator.to(self.device, memory_format=layout)
        self.recipe, self.bf16, self.layout = recipe, bf16, layout
        # The tutorials' Adam (2e-4, betas 0.5/0.999, torch's default implementation) unless given.
        make_g, make_d = optimizers or (partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999)),) * 2
        self.opt_g, self.opt_d = make_g(self.G.parameters()), make_d(self.D.parameters())
        self.ema = (
            AveragedModel(self.G, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
            if ema_decay
            else None
        )
        self.latent_dim = generator.latent_dim

    def autocast(self) -> torch.autocast | nullcontext:
        return (
            torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        )

    def step(self, real: torch.Tensor) -> None:
        """One D update and one G update (no host sync: nothing is read back)."""
        real = real.contiguous(memory_format=self.layout)
        n = real.shape[0]
        z = torch.randn(n, self.latent_dim, device=self.device)
        with self.autocast():
            if self.recipe == "classic":
                fake = self.G(z)
                d_fake_in = fake.detach()
            else:
                with torch.no_grad():
                    d_fake_in = self.G(z)
            real_logits, fake_logits = self.D(real).float(), self.D(d_fake_in).float()
        d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        self.D.requires_grad_(
            False
        )  # as Lightning's toggle_optimizer does: no D grads in the G step
        with self.autocast():
            if self.recipe == "plain":
                fake = self.G(torch.randn(n, self.latent_dim, device=self.device))
            g_loss = F.softplus(-self.D(fake).float()).mean()
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        if self.ema is not None:
            self.ema.update_parameters(self.G)

    def sampling_generator(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.G


def plain_gan(cfg: DictConfig, **options: object) -> PlainGAN:
    """gan-lab's step written by hand, with the config's networks, optimizers and EMA decay.

    ``options`` go to PlainGAN (``bf16``, ``channels_last``, ``device``).
    """
    import hydra

    optimizers = (
        hydra.utils.instantiate(cfg.model.optimizer_g),
        hydra.utils.instantiate(cfg.model.optimizer_d),
    )
    return PlainGAN(
        hydra.utils.instantiate(cfg.model.generator),
        hydra.utils.instantiate(cfg.model.discriminator),
        recipe="plain",
        ema_decay=cfg.model.ema_decay,
        optimizers=optimizers,
        **options,
    )


def train_for(
    gan: PlainGAN,
    batches: Iterator[torch.Tensor],
    seconds: float,
    clock: Callable[[], float] = time.perf_counter,
) -> int:
    """Train until ``clock`` has advanced ``seconds`` (data loading included); returns steps.

    The default clock is wall time; bench_quality passes a CPU-time clock so that a budget means
    the same on a busy machine.
    """
    start, steps = clock(), 0
    while clock() - start < seconds:
        gan.step(next(batches))
        steps += 1
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--setup", choices=sorted(SETUPS), default="dcgan32")
    parser.add_argument("--seconds", type=float, required=True, help="wall-clock training budget")
    parser.add_argument(
        "--out", type=Path, required=True, help="where to save the generator's state_dict"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    setup = SETUPS[args.setup]
    gan = PlainGAN(*networks(setup), recipe="classic")
    steps = train_for(gan, forever(torchvision_loader(setup)), args.seconds)
    torch.save({"generator": gan.G.state_dict(), "setup": setup.__dict__, "steps": steps}, args.out)
    print(
        f"classic {setup.name}/{setup.dataset}: {steps} steps in {args.seconds:.0f}s -> {args.out}"
    )


if __name__ == "__main__":
    main()
