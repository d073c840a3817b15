"""Gradient penalty and R1 compute what the papers define, and their gradients reach D's weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.regularizers import DiscriminatorRegularizer, gradient_penalty, r1_penalty


class TinyCritic(nn.Module):
    """A smooth 2-layer critic on (N, 1, 2, 2) inputs, in float64 for finite differences."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1)).double()

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).squeeze(1)


def _fd_input_grad(d: nn.Module, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Central finite differences of D(x_i) w.r.t. each pixel of each sample: (N, pixels)."""
    flat = x.detach().flatten(1)
    grads = torch.zeros_like(flat)
    with torch.no_grad():
        for j in range(flat.shape[1]):
            step = torch.zeros_like(flat)
            step[:, j] = eps
            plus, minus = d((flat + step).view_as(x)), d((flat - step).view_as(x))
            grads[:, j] = (plus - minus) / (2 * eps)
    return grads


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(5, 1, 2, 2, generator=g, dtype=torch.float64), torch.randn(
        5, 1, 2, 2, generator=g, dtype=torch.float64
    )


def test_gradient_penalty_equals_finite_difference_estimate() -> None:
    d, (real, fake) = TinyCritic(), _data()
    torch.manual_seed(7)
    gp = gradient_penalty(d, real, fake)
    torch.manual_seed(7)  # same interpolation weights as inside gradient_penalty
    alpha = torch.rand(5, 1, 1, 1, dtype=torch.float64)
    x_hat = alpha * real + (1 - alpha) * fake
    expected = (_fd_input_grad(d, x_hat).norm(dim=1) - 1).pow(2).mean()
    assert gp.item() == pytest.approx(float(expected), rel=1e-6)


def test_r1_equals_finite_difference_estimate() -> None:
    d, (real, _) = TinyCritic(), _data()
    expected = _fd_input_grad(d, real).pow(2).sum(dim=1).mean()
    assert float(r1_penalty(d, real)) == pytest.approx(float(expected), rel=1e-6)


def test_gradient_penalty_of_a_linear_critic_is_closed_form() -> None:
    # D(x) = w.x has gradient w everywhere: GP = (||w|| - 1)^2 exactly, R1 = ||w||^2.
    linear = nn.Sequential(nn.Flatten(), nn.Linear(4, 1, bias=False)).double()
    with torch.no_grad():
        linear[1].weight.copy_(torch.tensor([[3.0, 0.0, 4.0, 0.0]]))

    def critic(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return linear(x).squeeze(1)

    real, fake = _data()
    assert float(gradient_penalty(critic, real, fake)) == pytest.approx(16.0)
    assert float(r1_penalty(critic, real)) == pytest.approx(25.0)


def test_penalty_gradient_w_r_t_weights_matches_finite_differences() -> None:
    """Double backward works: d(GP)/d(theta) agrees with perturbing one weight."""
    d, (real, fake) = TinyCritic(), _data()
    weight = d.net[1].weight
    torch.manual_seed(3)
    gradient_penalty(d, real, fake).backward()
    analytic = weight.grad[2, 1].item()
    eps = 1e-3  # the penalty is returned in fp32
    values = []
    for sign in (1, -1):
        with torch.no_grad():
            weight[2, 1] += sign * eps
        torch.manual_seed(3)
        values.append(gradient_penalty(d, real, fake).item())
        with torch.no_grad():
            weight[2, 1] -= sign * eps
    assert analytic == pytest.approx((values[0] - values[1]) / (2 * eps), rel=2e-3)


def test_lazy_r1_runs_every_interval_with_the_weight_scaled_up() -> None:
    d, (real, fake) = TinyCritic(), _data()
    reg = DiscriminatorRegularizer(r1_gamma=2.0, r1_interval=4)
    r1 = float(r1_penalty(d, real))
    totals = [reg(d, real, fake, None, step)[0].item() for step in range(8)]
    assert totals[0] == pytest.approx(0.5 * 2.0 * 4 * r1) and totals[4] == pytest.approx(totals[0])
    assert [totals[i] for i in (1, 2, 3, 5, 6, 7)] == [0.0] * 6
    _, logs = reg(d, real, fake, None, 0)
    assert set(logs) == {"penalty/r1"}


def test_gp_and_r1_add_up_with_their_weights() -> None:
    d, (real, fake) = TinyCritic(), _data()
    torch.manual_seed(5)
    gp = float(gradient_penalty(d, real, fake))
    r1 = float(r1_penalty(d, real))
    torch.manual_seed(5)
    total, logs = DiscriminatorRegularizer(gp_weight=10.0, r1_gamma=1.0)(d, real, fake, None, 0)
    assert float(total) == pytest.approx(10.0 * gp + 0.5 * r1)
    assert set(logs) == {"penalty/gp", "penalty/r1"}


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"gp_weight": -1.0}, "model.regularizer.gp_weight"),
        ({"r1_gamma": -0.1}, "model.regularizer.r1_gamma"),
        ({"r1_gamma": 1.0, "r1_interval": 0}, "model.regularizer.r1_interval"),
    ],
)
def test_bad_regularizer_settings_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        DiscriminatorRegularizer(**kwargs)
    assert info.value.key == key


class QuadraticCritic(nn.Module):
    """``D(x, y) = sum(a * x^2) + w_y . x``: input gradient ``2 a x + w_y`` in closed form."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(4)
        self.a = nn.Parameter(torch.randn(4, generator=g, dtype=torch.float64))
        self.w = nn.Parameter(torch.randn(3, 4, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)
        w = self.w[y] if y is not None else self.w[0].expand_as(x)
        return (self.a * x**2).sum(1) + (w * x).sum(1)

    def closed_form_penalty(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """E ||2 a x + w_y||^2, written out (autograd differentiates it w.r.t. a and w)."""
        x = x.flatten(1)
        w = self.w[y] if y is not None else self.w[0].expand_as(x)
        return (2 * self.a * x + w).pow(2).sum(1).mean()


def _grads(d: nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, [d.a, d.w]))


@pytest.mark.parametrize("conditional", [False, True])
def test_r1_and_r2_match_the_closed_form_and_its_autograd_gradient(conditional: bool) -> None:
    d, (real, fake) = QuadraticCritic(), _data()
    y_real = torch.tensor([0, 1, 2, 0, 1]) if conditional else None
    y_fake = torch.tensor([2, 2, 1, 0, 0]) if conditional else None
    reg = DiscriminatorRegularizer(r1_gamma=0.4, r2_gamma=0.1)
    total, logs = reg(d, real, fake, y_real, 0, y_fake=y_fake)
    r1, r2 = d.closed_form_penalty(real, y_real), d.closed_form_penalty(fake, y_fake)
    # the penalties come back in fp32 (D's gradients are cast, as under bf16 autocast)
    assert float(logs["penalty/r1"]) == pytest.approx(float(r1), rel=1e-6)
    assert float(logs["penalty/r2"]) == pytest.approx(float(r2), rel=1e-6)
    expected = 0.5 * 0.4 * r1 + 0.5 * 0.1 * r2
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    # the double backward through D equals autograd on the explicit formula
    both = 0.5 * 0.4 * r1_penalty(d, real, y_real) + 0.5 * 0.1 * r1_penalty(d, fake, y_fake)
    for got, want in zip(_grads(d, both), _grads(d, expected), strict=True):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    if conditional:  # R2 scores the fakes under their own labels
        assert float(r1_penalty(d, fake, y_real)) != pytest.approx(float(r2))


@pytest.mark.parametrize(("r1_gamma", "r2_gamma"), [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
def test_r1_r2_or_both_lazily_with_the_weight_scaled(r1_gamma: float, r2_gamma: float) -> None:
    d, (real, fake) = QuadraticCritic(), _data()
    reg = DiscriminatorRegularizer(r1_gamma=r1_gamma, r2_gamma=r2_gamma, r1_interval=3)
    r1, r2 = float(d.closed_form_penalty(real, None)), float(d.closed_form_penalty(fake, None))
    totals = [float(reg(d, real, fake, None, step)[0]) for step in range(6)]
    due = 0.5 * 3 * (r1_gamma * r1 + r2_gamma * r2)
    assert totals[0] == pytest.approx(due) and totals[3] == pytest.approx(due)
    assert [totals[i] for i in (1, 2, 4, 5)] == [0.0] * 4
    expected_logs = {k for k, g in (("penalty/r1", r1_gamma), ("penalty/r2", r2_gamma)) if g}
    assert set(reg(d, real, fake, None, 0)[1]) == expected_logs
    assert reg.needs_input_gradients
