"""Gradient accumulation (model.accumulate): N micro-batches make the update of one batch N times larger."""

from __future__ import annotations

from collections.abc import Callable

import hydra
import lightning as L
import pytest
import torch
from omegaconf import DictConfig

from gan_lab.errors import ConfigError, find_user_error
from gan_lab.preflight import validate_config
from gan_lab.trainer_args import trainer_config
from gan_lab.training.accumulation import combined, micro_batches
from gan_lab.utils import instantiate_model
from tests.conftest import TINY_MLP_GAN
from tests.weights import strip_batchnorm, weights

BATCH_64 = ("data.batch_size=64", "data.source.num_samples=256", "model.n_critic=2", "seed=5")
G_STEPS = 3


def _fit(cfg: DictConfig, d_batch_sizes: list[int]) -> dict[str, torch.Tensor]:
    L.seed_everything(cfg.seed)
    model = hydra.utils.instantiate(cfg.model)
    strip_batchnorm(model.generator)  # batch statistics would differ per micro-batch
    strip_batchnorm(model.ema)
    model.discriminator.register_forward_pre_hook(
        lambda _, args: d_batch_sizes.append(len(args[0]))
    )
    trainer = hydra.utils.instantiate(
        trainer_config(cfg), max_steps=G_STEPS, logger=False, callbacks=[],
        enable_checkpointing=False, enable_progress_bar=False,
    )  # fmt: skip
    trainer.fit(model, datamodule=hydra.utils.instantiate(cfg.data))
    return weights(model)


@pytest.mark.parametrize(
    "recipe",
    [
        ("model/loss=non_saturating",),
        # relativistic pairs, and R1 + R2 on every D step (double backward per micro-batch)
        ("model/loss=rpgan", "model/regularizer=r1r2", "model.regularizer.r1_gamma=1.0"),
    ],
    ids=["non_saturating", "rpgan_r1r2"],
)
def test_four_micro_batches_of_16_give_the_weights_of_one_batch_of_64(
    make_cfg: Callable[..., DictConfig], recipe: tuple[str, ...], one_cpu_thread: None
) -> None:
    one_batch, micro = [], []
    whole = _fit(make_cfg(*TINY_MLP_GAN, *BATCH_64, *recipe), one_batch)
    split = _fit(make_cfg(*TINY_MLP_GAN, *BATCH_64, *recipe, "model.accumulate=4"), micro)
    assert set(one_batch) == {64} and set(micro) == {16}  # D really saw micro-batches
    assert len(micro) == 4 * len(one_batch)
    L.seed_everything(5)
    initial = weights(hydra.utils.instantiate(make_cfg(*TINY_MLP_GAN, *BATCH_64).model))
    trained = [k for k in whole if k.startswith(("generator.", "discriminator.", "ema."))]
    moved = [k for k in trained if k in initial and not torch.allclose(initial[k], whole[k])]
    assert len(moved) >= 8, "training must move the weights for the comparison to mean anything"
    for key in trained:
        torch.testing.assert_close(split[key], whole[key], atol=1e-5, rtol=1e-5, msg=key)


def test_micro_batches_split_every_tensor_alike_and_combine_back() -> None:
    x, z = torch.arange(8.0).view(8, 1), torch.arange(16.0).view(8, 2)
    chunks = micro_batches(4, x, None, z)
    assert len(chunks) == 4 and all(c[1] is None for c in chunks)
    assert torch.equal(chunks[2][0], x[4:6]) and torch.equal(chunks[2][2], z[4:6])
    parts = [(c[0].sum(), c[2], {"r1": c[0].mean()}) for c in chunks]
    total, logits, terms = combined(parts)
    assert torch.equal(logits, z)  # batch tensors: concatenated in order
    assert total.item() == pytest.approx(x.sum().item() / 4)  # scalars: the mean of the parts
    assert terms["r1"].item() == pytest.approx(x.mean().item())


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (("data.batch_size=16", "model.accumulate=3"), "model.accumulate"),
        (("model.accumulate=0",), "model.accumulate"),
        (("model/regularizer=lecam", "model.accumulate=2"), "model.accumulate"),
        (("trainer.accumulate_grad_batches=4",), "trainer.accumulate_grad_batches"),
    ],
)
def test_bad_accumulation_is_one_line_error_before_training(
    make_cfg: Callable[..., DictConfig], overrides: tuple[str, ...], key: str
) -> None:
    cfg = make_cfg(*TINY_MLP_GAN, *overrides)
    with pytest.raises(Exception) as raised:
        validate_config(cfg)
        instantiate_model(cfg.model)  # the module owns the rest
    error = find_user_error(raised.value)  # what gan-train prints
    assert isinstance(error, ConfigError) and str(error).startswith(key) and "\n" not in str(error)
