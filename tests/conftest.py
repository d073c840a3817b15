"""Shared fixtures: compose configs like `gan-train` does, on real data when present.

Set GAN_DATA_DIR (CI sets it to ../shared/data) to run the real-data tests; without it the
tests fall back to the synthetic source.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from gan_lab.train import CONFIG_PATH

DATA_DIR = Path(os.environ["GAN_DATA_DIR"]) if os.environ.get("GAN_DATA_DIR") else None
MNIST_AVAILABLE = DATA_DIR is not None and (DATA_DIR / "MNIST" / "raw").is_dir()
CIFAR_FOLDER = DATA_DIR / "cifar10-jpg" if DATA_DIR is not None else None
CIFAR_AVAILABLE = CIFAR_FOLDER is not None and (CIFAR_FOLDER / "train").is_dir()

requires_mnist = pytest.mark.skipif(not MNIST_AVAILABLE, reason="needs MNIST under GAN_DATA_DIR")
requires_cifar = pytest.mark.skipif(
    not CIFAR_AVAILABLE, reason="needs cifar10-jpg under GAN_DATA_DIR"
)

# Small and quiet: no progress bar, no model summary, tiny checkpoints intervals.
FAST_OVERRIDES = (
    "trainer.enable_model_summary=false",
    "~callbacks.progress_bar",
    "trainer.log_every_n_steps=1",
    "trainer.accelerator=cpu",
)


# A tiny MLP GAN on a small synthetic set, without the image-writing callbacks: seconds per run.
TINY_MLP_GAN = (
    "data/source=synthetic",
    "data.channels=1",
    "data.image_size=16",
    "data.source.num_samples=128",
    "data.batch_size=16",
    "model.generator.latent_dim=16",
    "model.generator.width=32",
    "model.discriminator.width=32",
    "~callbacks.sample_grid",
    "~callbacks.lr_monitor",
)


def run_cli(
    args: Sequence[str], cwd: Path, timeout: int = 300, **env: str
) -> subprocess.CompletedProcess:
    """`gan-train <args>` in a fresh process, with logs/ under ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "gan_lab.train", *args],
        cwd=cwd,
        env={**os.environ, "GAN_LAB_ROOT": str(cwd), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def compose_train_config(
    overrides: Sequence[str], output_dir: Path, config_name: str = "train", fast: bool = True
) -> DictConfig:
    """The config `gan-train <overrides>` would run, writing into ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(
            config_name=config_name, overrides=[*(FAST_OVERRIDES if fast else ()), *overrides]
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
        cfg.paths.cache_dir = str(Path(os.environ.get("GAN_CACHE_DIR", output_dir / "cache")))
        if DATA_DIR is not None:
            cfg.paths.data_dir = str(DATA_DIR)
    return cfg


def data_overrides(dataset: str) -> list[str]:
    """Real data when present, else the synthetic stand-in at the same image shape."""
    if dataset == "mnist" and MNIST_AVAILABLE:
        return []
    if dataset == "cifar10" and CIFAR_AVAILABLE:
        return [f"data.path={CIFAR_FOLDER}"]
    channels = 1 if dataset == "mnist" else 3
    return ["data/source=synthetic", f"data.channels={channels}", "data.source.num_samples=512"]


@pytest.fixture(scope="session", autouse=True)
def _shared_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Decode each dataset once per test session, not once per test.
    os.environ.setdefault("GAN_CACHE_DIR", str(tmp_path_factory.mktemp("data_cache")))


@pytest.fixture
def one_cpu_thread() -> Iterator[None]:
    """Tiny nets train several times faster on one thread when the cores are shared (CI)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    def _make(*overrides: str, dataset: str | None = None, fast: bool = True) -> DictConfig:
        extra = data_overrides(dataset) if dataset else []
        return compose_train_config([*overrides, *extra], tmp_path / "run", fast=fast)

    return _make


@pytest.fixture(scope="session")
def tiny_gan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-step MLP GAN run on synthetic data (checkpoint, TensorBoard events, metrics every 2 steps).

    The metrics callback uses an untrained classifier: enough to exercise the plumbing.
    """
    import torch

    from gan_lab.metrics.classifier import ClassifierSpec, SmallCNN, save_classifier
    from gan_lab.train import train

    root = tmp_path_factory.mktemp("tiny_gan")
    torch.manual_seed(0)
    classifier = root / "synthetic_classifier.pt"
    spec = ClassifierSpec("synthetic", 16, 1, 10, stem=4, widths=[8, 8])
    save_classifier(SmallCNN(spec), classifier, {})
    overrides = [
        "data/source=synthetic", "data.source.num_samples=128", "data.batch_size=32", "data.image_size=16",
        "data.channels=1", "model.generator.width=8", "model.discriminator.width=8", "trainer.max_steps=4",
        "callbacks.sample_grid.every_n_steps=2", "callbacks.metrics.every_n_steps=2",
        "callbacks.metrics.n_samples=24", "callbacks.metrics.n_reference=32",
        f"callbacks.metrics.classifier_path={classifier}",
    ]  # fmt: skip
    train(compose_train_config(overrides, root / "run"))
    return root / "run"
