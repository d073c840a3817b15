"""RpGAN against hand-written computations on a linear critic, and with R1 + R2 through training."""

from __future__ import annotations

import math

import pytest
import torch

from gan_lab.models.losses import (
    AdversarialLoss,
    HingeLoss,
    NonSaturatingLoss,
    RpGANLoss,
    WassersteinLoss,
)
from gan_lab.train import train

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    w = torch.randn(6, generator=g, dtype=torch.float64)
    return (
        w,
        torch.randn(5, 6, generator=g, dtype=torch.float64),
        torch.randn(5, 6, generator=g, dtype=torch.float64),
    )


def test_d_loss_and_its_gradient_are_the_pairwise_softplus_in_closed_form() -> None:
    """D(x) = w.x: loss = mean log(1 + exp(-w.(x_r - x_f))), d/dw = -mean sigmoid(-w.d) d."""
    w, real, fake = _batch()
    w.requires_grad_(True)
    loss = RpGANLoss().d_loss(real @ w, fake @ w)
    gap = ((real - fake) @ w).detach()
    expected = sum(math.log1p(math.exp(-float(t))) for t in gap) / 5
    assert float(loss) == pytest.approx(expected, rel=1e-6)  # the loss is fp32
    (grad,) = torch.autograd.grad(loss, w)
    closed = -(torch.sigmoid(-gap)[:, None] * (real - fake)).mean(0)
    assert torch.allclose(grad.double(), closed, rtol=1e-5, atol=1e-7)


def test_g_loss_pushes_each_fake_above_its_paired_real() -> None:
    """d/dx_f mean softplus(w.x_r - w.x_f) = -sigmoid(w.(x_r - x_f)) w / N, per fake."""
    w, real, fake = _batch()
    fake.requires_grad_(True)
    loss = RpGANLoss().g_loss(fake @ w, real @ w)
    (grad,) = torch.autograd.grad(loss, fake)
    closed = -torch.sigmoid(((real - fake) @ w).detach())[:, None] * w / 5
    assert torch.allclose(grad.double(), closed, rtol=1e-5, atol=1e-7)
    # pairing, not means: swapping two reals changes the loss (a mean-based loss would not)
    swapped = real[[1, 0, 2, 3, 4]]
    assert float(RpGANLoss().g_loss(fake @ w, swapped @ w)) != pytest.approx(float(loss))


def test_it_is_relativistic_and_says_what_it_needs() -> None:
    loss = RpGANLoss()
    assert loss.relativistic and loss.bounded_below and not loss.outputs_probability
    assert loss.name == "rpgan"
    with pytest.raises(ValueError, match="real_logits"):
        loss.g_loss(torch.zeros(3))
    # indistinguishable scores cost log 2 for both players
    zeros = torch.zeros(4)
    assert (
        float(loss.d_loss(zeros, zeros))
        == float(loss.g_loss(zeros, zeros))
        == pytest.approx(math.log(2))
    )


def test_r3gan_recipe_trains_with_rpgan_r1_r2_and_ada(make_cfg) -> None:
    cfg = make_cfg(
        "experiment=cifar10_r3gan_small",
        "model.generator.width=8",
        "model.discriminator.width=8",
        "model.regularizer.r1_interval=2",
        "data/source=synthetic",
        "data.source.num_samples=32",
        "data.batch_size=8",
        "trainer.max_kimg=null",  # the recipe budgets 3000 kimg
        "trainer.max_steps=3",
        "~callbacks.sample_grid",
        "~logger",
    )
    assert cfg.model.loss._target_.endswith("RpGANLoss")
    metrics = train(cfg)
    assert metrics["g_step"] == 3
    for key in ("loss/d", "loss/g", "penalty/r1", "penalty/r2", "augment/p"):
        assert math.isfinite(metrics[key]), key


@pytest.mark.parametrize(
    ("loss", "shift_invariant"),
    [
        (RpGANLoss(), True),
        (WassersteinLoss(), True),
        (NonSaturatingLoss(), False),
        (HingeLoss(), False),
    ],
)
def test_real_margin_is_positive_where_d_calls_a_real_real(
    loss: AdversarialLoss, shift_invariant: bool
) -> None:
    """ADA reads sign(real_margin): for losses blind to a constant offset, so is the margin."""
    real, fake = torch.tensor([2.0, -1.0, 0.5, -3.0]), torch.tensor([1.0, -2.0, 1.5, -3.5])
    margin = loss.real_margin(real, fake)
    shifted = loss.real_margin(real + 10.0, fake + 10.0)
    assert torch.equal(margin.sign(), shifted.sign()) == shift_invariant
    if isinstance(loss, RpGANLoss):  # each real against its own fake
        assert margin.tolist() == [1.0, 1.0, -1.0, 0.5]
    if not shift_invariant:  # logistic and hinge decide at 0
        assert torch.equal(margin, real)


def test_lsgan_real_margin_decides_halfway_between_its_codes() -> None:
    from gan_lab.models.losses import LSGANLoss

    margin = LSGANLoss().real_margin(torch.tensor([0.9, 0.4, 0.5]), torch.zeros(3))
    assert margin.tolist() == pytest.approx([0.4, -0.1, 0.0])
