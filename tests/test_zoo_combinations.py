"""Every {generator, discriminator} x {loss} x {dataset shape} that is meant to work trains; the
rest fail before any data loads with a one-line ConfigError naming the key to change."""

from __future__ import annotations

import csv
import math
import shutil
import time
from itertools import product
from pathlib import Path

import hydra
import pytest
import torch

from gan_lab.errors import ConfigError, find_user_error
from gan_lab.train import CONFIG_PATH, train
from gan_lab.utils import instantiate_model
from tests import zoo
from tests.conftest import CIFAR_AVAILABLE, MNIST_AVAILABLE

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


QUIET = (
    "~callbacks.model_checkpoint",
    "~callbacks.sample_grid",
    "~logger",
    "+trainer.enable_checkpointing=false",
)


def zoo_overrides(g: str, d: str, loss: str, data: tuple[str, int, int]) -> list[str]:
    _, size, channels = data
    return [
        f"model/generator={g}",
        f"model/discriminator={d}",
        f"model/loss={loss}",
        *zoo.tiny_overrides(g, d),
        "data/source=synthetic",
        f"data.image_size={size}",
        f"data.channels={channels}",
        "data.source.num_samples=64",
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


def _id(combo: zoo.Combo) -> str:
    g, d, loss, data = combo
    return f"{g}-{d}-{loss}-{data[0]}"


@pytest.mark.parametrize("combo", zoo.fast_combos(), ids=_id)
def test_meant_to_work_combination_trains_5_steps(combo, make_cfg) -> None:
    _run(make_cfg, zoo_overrides(*combo))


@pytest.mark.slow
@pytest.mark.parametrize("combo", zoo.all_combos(), ids=_id)
def test_every_loss_with_every_combination_trains_5_steps(combo, make_cfg) -> None:
    _run(make_cfg, zoo_overrides(*combo))


def test_the_fast_selection_covers_every_loss_pair_and_dataset() -> None:
    fast = zoo.fast_combos()
    assert set(fast) <= set(zoo.all_combos())
    assert {c[2] for c in fast} == set(zoo.names("loss"))
    assert {(c[0], c[1]) for c in fast} == {(g.name, d.name) for g, d in zoo.pairs()}
    assert {c[3][0] for c in fast} == {name for name, _, _ in zoo.DATASETS}


def test_the_zoo_is_read_from_the_configs() -> None:
    """Today's zoo, as the YAMLs and the networks' ``supports`` define it (more may be added)."""
    losses = {"hinge", "lsgan", "minimax", "non_saturating", "wasserstein"}
    assert set(zoo.names("loss")) >= losses
    unconditional = ("dcgan", "mlp", "resnet")
    today = {*product(unconditional, unconditional), ("resnet_cbn", "resnet_proj")}
    assert {(g.name, d.name) for g, d in zoo.pairs()} >= today
    assert ("resnet_cbn", "resnet") not in {(g.name, d.name) for g, d in zoo.pairs()}
    # mlp-mlp at all three shapes, every other pair at 32x32 only (the conv nets' supports)
    combos = [c for c in zoo.all_combos() if c[2] in losses and (c[0], c[1]) in today]
    assert len(combos) == (1 * 3 + 9 * 2) * 5
    assert {c[3][0] for c in combos if c[0] == "mlp" and c[1] == "mlp"} == {
        "mnist28",
        "mnist32",
        "cifar10",
    }


def test_a_copied_yaml_adds_zoo_cases_with_no_test_edited(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(CONFIG_PATH, configs)
    shutil.copy(configs / "model/loss/hinge.yaml", configs / "model/loss/hinge2.yaml")
    shutil.copy(configs / "model/generator/dcgan.yaml", configs / "model/generator/dcgan2.yaml")
    before, after = set(zoo.all_combos()), set(zoo.all_combos(configs))
    like_hinge = {(g, d, "hinge2", data) for g, d, loss, data in after if loss == "hinge"}
    like_dcgan = {("dcgan2", d, loss, data) for g, d, loss, data in after if g == "dcgan"}
    assert before <= after
    assert after - before == like_hinge | like_dcgan
    # DCGAN builds 32x32, not 28x28: the copy is tested where the class says it works
    assert {c[3][0] for c in like_dcgan} == {"mnist32", "cifar10"}
    assert len({c for c in like_hinge if c[0] != "dcgan2"}) == len(before) // len(zoo.names("loss"))
    fast = zoo.fast_combos(configs)
    assert "hinge2" in {c[2] for c in fast} and "dcgan2" in {c[0] for c in fast}


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
        (["model/augment=ada", "model/regularizer=lecam"], "cifar10"),
    ],
    ids=["wgan-gp", "diffaug+lazy-r1", "sn-g-and-d", "ada+lecam"],
)
def test_regularizers_augmentation_and_spectral_norm_train(
    extra: list[str], dataset: str, make_cfg
) -> None:
    data = next(d for d in zoo.DATASETS if d[0] == dataset)
    overrides = zoo_overrides("resnet", "resnet", "hinge", data)
    metrics = _run(make_cfg, [*overrides, *extra])
    if any("regularizer" in e for e in extra):
        assert any(k.startswith("penalty/") for k in metrics), sorted(metrics)


def _instantiate_error(make_cfg, overrides: list[str]) -> ConfigError:
    cfg = make_cfg(*overrides)
    with pytest.raises(Exception) as info:
        instantiate_model(cfg.model)
    error = find_user_error(info.value)
    assert isinstance(error, ConfigError), info.value
    return error


@pytest.mark.parametrize(
    ("g", "d", "size", "extra", "key"),
    [
        ("resnet", "resnet_proj", 32, [], "model.discriminator.num_classes"),
        ("resnet_cbn", "resnet", 32, [], "model.discriminator.num_classes"),
        ("resnet_cbn", "resnet_proj", 32, ["data.num_classes=null"], "data.num_classes"),
        ("resnet", "resnet", 28, [], "data.image_size"),
        ("r3gan", "r3gan", 28, [], "data.image_size"),
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


@pytest.mark.parametrize(
    ("decay_start", "factors"),
    [
        # after G step k of K=5 both rates are lr * (1 - k / K), the ratio between them kept
        (0.0, [0.8, 0.6, 0.4, 0.2, 0.0]),
        # full LR for the first 3 steps (0.6 x 5), then to 0 over the last 2
        (0.6, [1.0, 1.0, 1.0, 0.5, 0.0]),
    ],
)
def test_linear_lr_decay_and_two_time_scales(decay_start, factors, make_cfg, tmp_path) -> None:
    overrides = zoo_overrides("mlp", "mlp", "hinge", zoo.DATASETS[0])
    lrs = ["model.optimizer_g.lr=1e-4", "model.optimizer_d.lr=4e-4"]
    schedule = ["model.lr_schedule=linear", f"model.lr_decay_start={decay_start}"]
    cfg = make_cfg(*[o for o in overrides if o != "~logger"], *lrs, *schedule, "logger=csv")
    train(cfg)
    (metrics_file,) = Path(cfg.paths.output_dir).rglob("metrics.csv")
    rows = [r for r in csv.DictReader(metrics_file.open()) if r.get("lr/g")]
    assert [float(r["lr/g"]) for r in rows] == pytest.approx([1e-4 * f for f in factors])
    assert [float(r["lr/d"]) for r in rows] == pytest.approx([4e-4 * f for f in factors])


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
