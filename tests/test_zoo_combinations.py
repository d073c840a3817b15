"""Every {generator, discriminator} x {loss} x {dataset shape} that is meant to work trains; the
rest fail before any data loads with a one-line ConfigError naming the key to change."""

from __future__ import annotations

import csv
import math
import time
from itertools import product
from pathlib import Path

import hydra
import pytest
import torch

from gan_lab.errors import ConfigError, find_user_error
from gan_lab.train import train
from tests.conftest import CIFAR_AVAILABLE, MNIST_AVAILABLE

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


LOSSES = ("minimax", "non_saturating", "hinge", "lsgan", "wasserstein")
# (generator, discriminator) pairs; the conditional pair only works as a pair
UNCONDITIONAL = ("mlp", "dcgan", "resnet")
PAIRS = [*product(UNCONDITIONAL, UNCONDITIONAL), ("resnet_cbn", "resnet_proj")]
# (name, image_size, channels): MNIST at its native 28 and padded-to-power-of-two 32, CIFAR-10
DATASETS = (("mnist28", 28, 1), ("mnist32", 32, 1), ("cifar10", 32, 3))
# tiny widths keep a 5-step run well under a second per combination
WIDTHS = {"mlp": 4, "dcgan": 4, "resnet": 8, "resnet_cbn": 8, "resnet_proj": 8}
QUIET = (
    "~callbacks.model_checkpoint",
    "~callbacks.sample_grid",
    "~logger",
    "+trainer.enable_checkpointing=false",
)


def _supports(net: str, image_size: int) -> bool:
    return net == "mlp" or image_size == 32


def all_combos() -> list[tuple[str, str, str, tuple[str, int, int]]]:
    """Every meant-to-work (generator, discriminator, loss, dataset)."""
    return [
        (g, d, loss, data)
        for (g, d), data, loss in product(PAIRS, DATASETS, LOSSES)
        if _supports(g, data[1]) and _supports(d, data[1])
    ]


def fast_combos() -> list[tuple[str, str, str, tuple[str, int, int]]]:
    """One run per pair, cycling losses and datasets so each loss, pair and dataset is met at
    least once (the full product, 105 runs, is the slow test below)."""
    out = []
    for i, (g, d) in enumerate(PAIRS):
        sized = [data for data in DATASETS if _supports(g, data[1]) and _supports(d, data[1])]
        out.append((g, d, LOSSES[i % len(LOSSES)], sized[i % len(sized)]))
    return out


def zoo_overrides(g: str, d: str, loss: str, data: tuple[str, int, int]) -> list[str]:
    _, size, channels = data
    return [
        f"model/generator={g}",
        f"model/discriminator={d}",
        f"model/loss={loss}",
        f"model.generator.width={WIDTHS[g]}",
        f"model.discriminator.width={WIDTHS[d]}",
        "data.source=synthetic",
        f"data.image_size={size}",
        f"data.channels={channels}",
        "data.synthetic_size=64",
        "data.batch_size=8",
        "trainer.max_steps=5",
        *QUIET,
    ]


def _run(make_cfg, overrides: list[str]) -> dict[str, float]:
    metrics = train(make_cfg(*overrides))
    assert metrics["g_step"] == 5
    for key in ("loss/d", "loss/g"):
        assert math.isfinite(metrics[key]), (key, metrics[key])
    return metrics


def _id(combo: tuple[str, str, str, tuple[str, int, int]]) -> str:
    g, d, loss, data = combo
    return f"{g}-{d}-{loss}-{data[0]}"


@pytest.mark.parametrize("combo", fast_combos(), ids=_id)
def test_meant_to_work_combination_trains_5_steps(combo, make_cfg) -> None:
    _run(make_cfg, zoo_overrides(*combo))


@pytest.mark.slow
@pytest.mark.parametrize("combo", all_combos(), ids=_id)
def test_every_loss_with_every_combination_trains_5_steps(combo, make_cfg) -> None:
    _run(make_cfg, zoo_overrides(*combo))


def test_the_fast_selection_covers_every_loss_pair_and_dataset() -> None:
    fast = fast_combos()
    assert set(fast) <= set(all_combos())
    assert {c[2] for c in fast} == set(LOSSES)
    assert {(c[0], c[1]) for c in fast} == set(PAIRS)
    assert {c[3][0] for c in fast} == {name for name, _, _ in DATASETS}


@pytest.mark.parametrize(
    ("extra", "dataset"),
    [
        (
            [
                "model/regularizer=gradient_penalty",
                "model/discriminator=resnet",
                "model.discriminator.spectral_norm=false",
            ],
            "cifar10",
        ),
        (
            [
                "model/augment=diffaugment",
                "model/regularizer=r1",
                "model.regularizer.r1_interval=2",
            ],
            "mnist32",
        ),
        (
            ["model.generator.spectral_norm=true", "model.discriminator.spectral_norm=true"],
            "mnist32",
        ),
    ],
    ids=["wgan-gp", "diffaug+lazy-r1", "sn-g-and-d"],
)
def test_regularizers_augmentation_and_spectral_norm_train(
    extra: list[str], dataset: str, make_cfg
) -> None:
    data = next(d for d in DATASETS if d[0] == dataset)
    overrides = zoo_overrides("resnet", "resnet", "hinge", data)
    metrics = _run(make_cfg, [*overrides, *extra])
    if any("regularizer" in e for e in extra):
        assert any(k.startswith("penalty/") for k in metrics), sorted(metrics)


def _instantiate_error(make_cfg, overrides: list[str]) -> ConfigError:
    cfg = make_cfg(*overrides)
    with pytest.raises(Exception) as info:
        hydra.utils.instantiate(cfg.model)
    error = find_user_error(info.value)
    assert isinstance(error, ConfigError), info.value
    return error


@pytest.mark.parametrize(
    ("g", "d", "size", "extra", "key"),
    [
        ("resnet", "resnet_proj", 32, [], "model.discriminator.num_classes"),
        ("resnet_cbn", "resnet", 32, [], "model.discriminator.num_classes"),
        ("resnet_cbn", "resnet_proj", 32, ["data.num_classes=null"], "model.generator.num_classes"),
        ("resnet", "resnet", 28, [], "data.image_size"),
        ("dcgan", "mlp", 28, [], "data.image_size"),
        ("mlp", "resnet", 64 + 1, [], "data.image_size"),
        ("dcgan", "dcgan", 32, ["model/regularizer=gradient_penalty"], "model.regularizer"),
        (
            "mlp",
            "mlp",
            32,
            ["model/regularizer=r1", "model.compile_networks=true"],
            "model.compile_networks",
        ),
        (
            "mlp",
            "mlp",
            32,
            ["model/augment=diffaugment", "model.augment.policy=[colour]"],
            "model.augment.policy",
        ),
    ],
)
def test_incompatible_combination_is_a_config_error(g, d, size, extra, key, make_cfg) -> None:
    overrides = zoo_overrides(g, d, "hinge", ("x", size, 3))
    error = _instantiate_error(make_cfg, [*overrides, *extra])
    assert error.key == key
    assert "\n" not in str(error)


def test_linear_lr_decay_and_two_time_scales(make_cfg, tmp_path) -> None:
    overrides = zoo_overrides("mlp", "mlp", "hinge", DATASETS[0])
    lrs = ["model.optimizer_g.lr=1e-4", "model.optimizer_d.lr=4e-4"]
    cfg = make_cfg(
        *[o for o in overrides if o != "~logger"], *lrs, "model.lr_schedule=linear", "logger=csv"
    )
    train(cfg)
    (metrics_file,) = Path(cfg.paths.output_dir).rglob("metrics.csv")
    rows = [r for r in csv.DictReader(metrics_file.open()) if r.get("lr/g")]
    # after G step k of K=5 both rates are lr * (1 - k / K), the ratio between them kept
    assert [float(r["lr/g"]) for r in rows] == pytest.approx(
        [1e-4 * (1 - k / 5) for k in range(1, 6)]
    )
    assert [float(r["lr/d"]) for r in rows] == pytest.approx(
        [4e-4 * (1 - k / 5) for k in range(1, 6)]
    )


def test_conditional_experiment_grid_has_one_class_per_row(make_cfg) -> None:
    cfg = make_cfg(
        "experiment=cifar10_cgan_pd", "model.generator.width=8", "model.discriminator.width=8"
    )
    model = hydra.utils.instantiate(cfg.model)
    nrow = cfg.callbacks.sample_grid.nrow
    rows = model.fixed_y.view(-1, nrow)
    assert rows.shape == (10, 10)
    assert torch.equal(rows, torch.arange(10)[:, None].expand(10, 10))


# ------------------------------------------------------------------- named experiments, real data
NAMED_EXPERIMENTS = {
    "mnist_dcgan": "mnist",
    "cifar10_dcgan": "cifar10",
    "cifar10_sndcgan": "cifar10",
    "cifar10_wgan_gp": "cifar10",
    "cifar10_sngan": "cifar10",
    "cifar10_sngan_diffaug": "cifar10",
    "cifar10_cgan_pd": "cifar10",
}
# CPU-sized: the papers' recipes (loss, n_critic, regularizer, augmentation, optimiser, LR decay)
# at a quarter of their widths and half their batch, so 200 G steps fit on a laptop CPU.
CPU_SIZE = ("model.generator.width=32", "model.discriminator.width=32", "data.batch_size=32")


@pytest.mark.slow
@pytest.mark.parametrize("experiment", list(NAMED_EXPERIMENTS))
def test_named_experiment_trains_200_steps_on_real_data(experiment: str, make_cfg) -> None:
    dataset = NAMED_EXPERIMENTS[experiment]
    if not (MNIST_AVAILABLE if dataset == "mnist" else CIFAR_AVAILABLE):
        pytest.skip(f"needs {dataset} under GAN_DATA_DIR")
    cfg = make_cfg(
        f"experiment={experiment}",
        *CPU_SIZE,
        "trainer.max_steps=200",
        "callbacks.sample_grid.every_n_steps=100",
        "logger=csv",
        dataset=dataset,
    )
    start = time.perf_counter()
    metrics = train(cfg)
    seconds = time.perf_counter() - start
    assert metrics["g_step"] == 200
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert (Path(cfg.paths.output_dir) / "samples" / "step_0000200.png").is_file()
    print(
        f"\n[zoo] {experiment}: 200 G steps ({200 * cfg.model.n_critic} D steps) in {seconds:.0f}s, "
        f"loss/d={metrics['loss/d']:.4f} loss/g={metrics['loss/g']:.4f} "
        + " ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()) if k.startswith("penalty/"))
    )
