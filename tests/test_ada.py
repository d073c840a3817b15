"""ADA: p follows the overfitting heuristic, every transform is gated per sample by p, state is exact."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.ada import AdaptiveAugment, rotate90, xflip

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def _observe(ada: AdaptiveAugment, logits: list[list[float]]) -> list[float]:
    return [float(ada.observe(torch.tensor(row))["augment/p"]) for row in logits]


def test_p_moves_by_images_over_speed_every_interval_and_is_clamped() -> None:
    ada = AdaptiveAugment(
        interval=4, speed_kimg=0.032, max_p=0.5
    )  # 16 images / 32 = 0.5 per interval
    # D is sure of every real (r_t = 1 > 0.6): p rises by 4 steps x 4 images / 32 images
    ps = _observe(ada, [[1.0, 2.0, 3.0, 0.5]] * 4)
    assert ps[:3] == [0.0, 0.0, 0.0] and ps[3] == pytest.approx(0.5)
    assert float(ada.rt) == 1.0
    _observe(ada, [[1.0] * 4] * 4)
    assert float(ada.p) == pytest.approx(0.5)  # clamped at max_p
    # r_t = (0 + 0 + 4 + 4) / 16 = 0.5 < 0.6: p falls by the same step, to 0
    ps = _observe(ada, [[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0] * 4, [1.0] * 4])
    assert ps[-1] == pytest.approx(0.0) and float(ada.rt) == pytest.approx(0.5)
    _observe(ada, [[-1.0] * 4] * 4)
    assert float(ada.p) == 0.0


def _train_tiny_d(balanced: bool, steps: int = 200) -> list[float]:
    """A small MLP D on 8 images: fakes are fresh noise (D memorises the reals) or the same 8."""
    torch.manual_seed(0)
    d = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
    opt = torch.optim.Adam(d.parameters(), 1e-3)
    ada = AdaptiveAugment(interval=4, speed_kimg=0.5, initial_p=0.5 if balanced else 0.0)
    reals = torch.rand(8, 3, 8, 8) * 2 - 1
    history = []
    for _ in range(steps):
        fakes = reals[torch.randperm(8)] if balanced else torch.rand(8, 3, 8, 8) * 2 - 1
        real_logits, fake_logits = d(ada(reals)).squeeze(1), d(ada(fakes)).squeeze(1)
        loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(ada.observe(real_logits)["augment/p"]))
    return history


def test_p_rises_when_d_overfits_a_tiny_set_and_falls_when_it_cannot() -> None:
    overfit = _train_tiny_d(balanced=False)
    assert overfit[0] == 0.0 and max(overfit) > 0.15 and overfit[-1] > 0.1
    balanced = _train_tiny_d(balanced=True)
    assert balanced[0] == 0.5 and balanced[-1] < 0.1


def test_each_transform_is_applied_per_sample_with_probability_p() -> None:
    x = torch.randn(4000, 1, 4, 4)
    ada = AdaptiveAugment(transforms=["xflip"], initial_p=0.3)
    out = ada(x)
    flipped = (out == xflip(x)).flatten(1).all(1) & ~(out == x).flatten(1).all(1)
    assert (flipped | (out == x).flatten(1).all(1)).all()  # each sample: flipped or untouched
    assert flipped.float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert torch.equal(AdaptiveAugment(initial_p=0.0)(x), x)  # p = 0: the identity
    always = AdaptiveAugment(transforms=["rotate90"], initial_p=0.99, max_p=1.0)
    always.p.fill_(1.0)
    torch.manual_seed(1)
    rotated = always(x)
    torch.manual_seed(1)
    torch.rand(4000, 1, 1, 1)  # the gate's draw, then rotate90's own
    assert torch.equal(rotated, rotate90(x))


def test_gradients_flow_through_the_augmentation() -> None:
    x = torch.randn(6, 3, 8, 8, requires_grad=True)
    ada = AdaptiveAugment(initial_p=0.9)
    ada(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_state_survives_save_and_load_exactly() -> None:
    ada = AdaptiveAugment(interval=3, speed_kimg=0.01)
    _observe(ada, [[1.0, 1.0, -1.0]] * 7)  # 2 intervals done, 1 step into the third
    state = {k: v.clone() for k, v in ada.state_dict().items()}
    assert set(state) == {"p", "rt", "sign_sum", "count", "observed"}
    restored = AdaptiveAugment(interval=3, speed_kimg=0.01)
    restored.load_state_dict(state)
    for key, value in ada.state_dict().items():
        assert torch.equal(value, restored.state_dict()[key]), key
    # the next interval ends at the same step with the same p, and augments identically
    assert _observe(ada, [[1.0] * 3] * 2) == _observe(restored, [[1.0] * 3] * 2)
    x = torch.randn(5, 3, 8, 8)
    torch.manual_seed(3)
    a = ada(x)
    torch.manual_seed(3)
    assert torch.equal(a, restored(x))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"transforms": ["hue"]}, "model.augment.transforms"),
        ({"target": 1.5}, "model.augment.target"),
        ({"interval": 0}, "model.augment.interval"),
        ({"speed_kimg": 0}, "model.augment.speed_kimg"),
        ({"initial_p": 1.0}, "model.augment.initial_p"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        AdaptiveAugment(**kwargs)
    assert info.value.key == key


def _rpgan_tiny_d_p(margin: bool, steps: int = 200) -> float:
    """The balanced tiny-D game under RpGAN: D cannot tell reals from fakes, its scores drift."""
    from gan_lab.models.losses import RpGANLoss

    torch.manual_seed(0)
    loss = RpGANLoss()
    d = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
    with torch.no_grad():
        d[-1].bias.fill_(3.0)  # RpGAN never moves a constant offset: every score sits near +3
    opt = torch.optim.Adam(d.parameters(), 1e-3)
    ada = AdaptiveAugment(interval=4, speed_kimg=0.5, initial_p=0.5)
    reals = torch.rand(8, 3, 8, 8) * 2 - 1
    for _ in range(steps):
        fakes = reals[torch.randperm(8)]
        real_logits, fake_logits = d(ada(reals)).squeeze(1), d(ada(fakes)).squeeze(1)
        opt.zero_grad()
        loss.d_loss(real_logits, fake_logits).backward()
        opt.step()
        scores = loss.real_margin(real_logits, fake_logits) if margin else real_logits
        ada.observe(scores)
    return float(ada.p)


def test_p_under_rpgan_reads_the_paired_margin_not_the_drifting_scores() -> None:
    # the raw signs say "D is sure of every real" (r_t = 1) and push p up although D is guessing
    assert _rpgan_tiny_d_p(margin=False) > 0.6
    # measured from each real's paired fake, r_t is ~0: p falls as in the non-relativistic game
    assert _rpgan_tiny_d_p(margin=True) < 0.1
