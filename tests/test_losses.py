"""Each adversarial loss rewards the right player for the right logits and has its textbook optimum."""

from __future__ import annotations

import math

import pytest
import torch

from gan_lab.models.losses import AdversarialLoss, discriminator_score
from tests import zoo
from tests.conftest import compose_train_config

# every loss of the zoo, built from its YAML (configs/model/loss/<name>.yaml) as training builds it
LOSSES = {name: zoo.build_loss(name) for name in zoo.names("loss")}


def get_loss(name: str) -> AdversarialLoss:
    return LOSSES[name]


# real scored as real (1), fake as fake (0): the target codes shared by all five losses' orderings
CONFIDENT_D = (torch.ones(4), torch.zeros(4))
UNSURE_D = (torch.full((4,), 0.5), torch.full((4,), 0.5))
FOOLED_D = (torch.zeros(4), torch.ones(4))


@pytest.mark.parametrize("name", list(LOSSES))
def test_d_loss_is_lower_when_d_separates_real_from_fake(name: str) -> None:
    loss = get_loss(name)
    assert loss.d_loss(*CONFIDENT_D) < loss.d_loss(*UNSURE_D) < loss.d_loss(*FOOLED_D)


@pytest.mark.parametrize("name", list(LOSSES))
def test_g_loss_is_lower_when_fakes_score_as_real(name: str) -> None:
    loss = get_loss(name)
    assert loss.g_loss(torch.ones(4)) < loss.g_loss(torch.zeros(4)) < loss.g_loss(-torch.ones(4))


def _best_shared_logit(name: str) -> float:
    """The logit minimising d_loss when real and fake look alike (D cannot tell them apart)."""
    grid = torch.linspace(-2.0, 2.0, 4001, dtype=torch.float64)
    d_loss = get_loss(name).d_loss
    values = torch.stack([d_loss(t.view(1), t.view(1)) for t in grid])
    return float(grid[values.argmin()])


@pytest.mark.parametrize(
    ("name", "optimum", "value"),
    [
        ("non_saturating", 0.0, 2 * math.log(2)),  # D* = sigmoid(0) = 1/2, loss 2 log 2
        ("minimax", 0.0, 2 * math.log(2)),
        ("lsgan", 0.5, 0.25),  # D* = (a*1 + b*0) / (a + b) = 1/2
    ],
)
def test_optimal_d_when_fakes_match_data(name: str, optimum: float, value: float) -> None:
    t = _best_shared_logit(name)
    assert t == pytest.approx(optimum, abs=1e-3)
    assert float(get_loss(name).d_loss(torch.tensor([t]), torch.tensor([t]))) == pytest.approx(
        value, abs=1e-6
    )


def test_hinge_d_loss_is_zero_exactly_outside_the_margin_and_flat_inside() -> None:
    d_loss = get_loss("hinge").d_loss
    assert float(d_loss(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, -7.0]))) == 0.0
    # indistinguishable inputs anywhere in [-1, 1] cost exactly 2
    for t in (-1.0, -0.3, 0.0, 0.8, 1.0):
        assert float(d_loss(torch.tensor([t]), torch.tensor([t]))) == pytest.approx(2.0)
    assert float(d_loss(torch.tensor([0.5]), torch.tensor([-2.0]))) == pytest.approx(0.5)


def test_wasserstein_is_the_mean_score_gap_and_g_maximises_the_fake_score() -> None:
    loss = get_loss("wasserstein")
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0])
    assert float(loss.d_loss(real, fake)) == pytest.approx(-1.0 - 2.0)
    assert float(loss.g_loss(fake)) == pytest.approx(1.0)


def test_lsgan_optima_are_the_target_codes() -> None:
    loss = get_loss("lsgan")
    assert float(loss.d_loss(torch.ones(3), torch.zeros(3))) == 0.0
    assert float(loss.g_loss(torch.ones(3))) == 0.0


def _g_grad(name: str, logit: float) -> float:
    t = torch.tensor([logit], requires_grad=True)
    get_loss(name).g_loss(t).backward()
    return float(t.grad)


def test_minimax_saturates_where_non_saturating_does_not() -> None:
    # Goodfellow et al.: when D confidently rejects fakes, log(1 - D) gives G almost no gradient.
    assert abs(_g_grad("minimax", -10.0)) < 1e-4
    assert _g_grad("non_saturating", -10.0) == pytest.approx(-1.0, abs=1e-4)
    assert float(get_loss("minimax").g_loss(torch.zeros(1))) == pytest.approx(-math.log(2))
    assert float(get_loss("non_saturating").g_loss(torch.zeros(1))) == pytest.approx(math.log(2))


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_are_fp32_and_finite_on_bf16_and_extreme_logits(name: str) -> None:
    loss = get_loss(name)
    real = torch.tensor([300.0, -300.0, 0.5], dtype=torch.bfloat16)
    fake = torch.tensor([-300.0, 300.0, -0.5], dtype=torch.bfloat16)
    d, g = loss.d_loss(real, fake), loss.g_loss(fake)
    assert d.dtype == g.dtype == torch.float32
    assert torch.isfinite(d) and torch.isfinite(g)
    assert float(d) == pytest.approx(float(loss.d_loss(real.float(), fake.float())))


def test_d_score_is_a_probability_only_for_logistic_losses() -> None:
    logits = torch.tensor([0.0, 0.0])
    assert float(discriminator_score(logits + 3, get_loss("non_saturating"))) == pytest.approx(
        torch.sigmoid(torch.tensor(3.0)).item()
    )
    assert float(discriminator_score(logits + 3, get_loss("hinge"))) == pytest.approx(3.0)


def test_unknown_loss_names_the_choices(tmp_path) -> None:
    with pytest.raises(Exception, match=r"(?s)model/loss/bce.*Available options.*hinge"):
        compose_train_config(["model/loss=bce"], tmp_path)


@pytest.mark.parametrize("name", list(LOSSES))
def test_each_loss_says_what_it_is(name: str) -> None:
    """The properties other modules read instead of a loss's name."""
    loss = get_loss(name)
    assert loss.name == name
    logistic = name in ("minimax", "non_saturating")
    assert loss.outputs_probability == logistic
    assert loss.bounded_below == (name != "wasserstein")  # the critic's gap has no floor
    assert loss.needs_lipschitz == (name == "wasserstein")
    assert not loss.relativistic
    # a bounded-below loss is >= 0 at any logits (the health monitor's D-loss floor relies on it)
    logits = torch.linspace(-20, 20, 41)
    if loss.bounded_below:
        assert float(loss.d_loss(logits, logits.flip(0))) >= 0.0
    else:
        assert float(loss.d_loss(logits.abs(), -logits.abs())) < 0.0
