"""LeCam regularization: the paper's term, EMA anchors, composition with R1, checkpointed state."""

from __future__ import annotations

import hydra
import pytest
import torch
from torch import nn

from gan_lab.errors import ConfigError, find_user_error
from gan_lab.models.lecam import LeCamRegularizer, lecam_penalty
from gan_lab.models.regularizers import DiscriminatorRegularizer, r1_penalty

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def _critic(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    return (x.flatten(1) ** 2).sum(1)  # D(x) = ||x||^2: grad 2x, R1 = 4 ||x||^2


def test_penalty_is_the_papers_hinge_squared_distance_to_the_other_anchor() -> None:
    real, fake = torch.tensor([1.0, 3.0, -2.0]), torch.tensor([0.5, -1.0, 2.0])
    anchor_real, anchor_fake = torch.tensor(1.5), torch.tensor(0.0)
    # relu(real - 0)^2 = [1, 9, 0]; relu(1.5 - fake)^2 = [1, 6.25, 0]
    expected = (1 + 9 + 0) / 3 + (1 + 6.25 + 0) / 3
    assert float(lecam_penalty(real, fake, anchor_real, anchor_fake)) == pytest.approx(expected)


def test_anchors_copy_the_first_means_then_average_with_the_decay() -> None:
    reg = LeCamRegularizer(weight=2.0, decay=0.9)
    x = torch.zeros(2, 1)
    batches = [([1.0, 3.0], [-1.0, -3.0]), ([4.0, 4.0], [0.0, 2.0]), ([0.0, 2.0], [1.0, 1.0])]
    expected_real, expected_fake = 2.0, -2.0  # the first update copies the means
    for i, (real, fake) in enumerate(batches):
        real_t, fake_t = torch.tensor(real), torch.tensor(fake)
        total, logs = reg(_critic, x, x, None, i, real_logits=real_t, fake_logits=fake_t)
        if i > 0:
            expected_real = 0.9 * expected_real + 0.1 * sum(real) / 2
            expected_fake = 0.9 * expected_fake + 0.1 * sum(fake) / 2
        assert float(reg.anchor_real) == pytest.approx(expected_real)
        assert float(reg.anchor_fake) == pytest.approx(expected_fake)
        term = lecam_penalty(
            real_t, fake_t, torch.tensor(expected_real), torch.tensor(expected_fake)
        )
        assert float(total) == pytest.approx(2.0 * float(term))
        assert float(logs["penalty/lecam"]) == pytest.approx(float(term))
    assert int(reg.updates) == 3


def test_start_step_keeps_copying_until_then() -> None:
    reg = LeCamRegularizer(decay=0.99, start_step=2)
    x = torch.zeros(1, 1)
    for i, value in enumerate([1.0, 5.0, 9.0]):
        reg(
            _critic,
            x,
            x,
            None,
            i,
            real_logits=torch.tensor([value]),
            fake_logits=torch.tensor([-value]),
        )
    assert float(reg.anchor_real) == pytest.approx(0.99 * 5.0 + 0.01 * 9.0)


def test_gradient_reaches_only_the_logits_past_the_anchors() -> None:
    reg = LeCamRegularizer(weight=1.0)
    reg.update_anchors(torch.tensor([0.0]), torch.tensor([0.0]))  # both anchors at 0
    real = torch.tensor([1.0, -1.0], requires_grad=True)
    fake = torch.tensor([1.0, -1.0], requires_grad=True)
    lecam_penalty(real, fake, reg.anchor_real, reg.anchor_fake).backward()
    assert real.grad.tolist() == [1.0, 0.0]  # d/dr mean(relu(r - 0)^2) = relu(r) (2 samples)
    assert fake.grad.tolist() == [0.0, -1.0]  # d/df mean(relu(0 - f)^2) = -relu(-f)


def test_gradient_penalties_on_top_add_their_terms_and_keep_their_numbers() -> None:
    r1 = DiscriminatorRegularizer(r1_gamma=2.0)
    reg = LeCamRegularizer(weight=0.5, penalties=r1)
    assert reg.needs_input_gradients and not LeCamRegularizer().needs_input_gradients
    real, fake = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    real_logits, fake_logits = _critic(real), _critic(fake)
    total, logs = reg(
        _critic, real, fake, None, 0, real_logits=real_logits, fake_logits=fake_logits
    )
    r1_term = r1_penalty(_critic, real).item()
    assert r1_term == pytest.approx(float(4 * real.pow(2).flatten(1).sum(1).mean()), rel=1e-5)
    assert float(total) == pytest.approx(0.5 * float(logs["penalty/lecam"]) + 1.0 * r1_term)
    assert float(logs["penalty/r1"]) == pytest.approx(r1_term)
    # passing the logits changes nothing for the gradient penalties themselves
    assert float(r1(_critic, real, fake, None, 0, real_logits, fake_logits)[0]) == float(
        r1(_critic, real, fake, None, 0)[0]
    )


def test_anchors_are_checkpointed_state() -> None:
    reg = LeCamRegularizer()
    reg.update_anchors(torch.tensor([0.3, 0.1]), torch.tensor([-0.7]))
    restored = LeCamRegularizer()
    restored.load_state_dict(reg.state_dict())
    assert set(reg.state_dict()) == {"anchor_real", "anchor_fake", "updates"}
    for key, value in reg.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key


def test_without_logits_it_says_what_it_needs() -> None:
    with pytest.raises(ValueError, match="logits"):
        LeCamRegularizer()(_critic, torch.zeros(1, 1), torch.zeros(1, 1), None, 0)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"weight": -1.0}, "model.regularizer.weight"),
        ({"decay": 1.0}, "model.regularizer.decay"),
        ({"start_step": -2}, "model.regularizer.start_step"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        LeCamRegularizer(**kwargs)
    assert info.value.key == key


def test_lecam_alone_accepts_a_batchnorm_d_but_not_with_r1(make_cfg) -> None:
    base = (
        "model/generator=dcgan",
        "model/discriminator=dcgan",
        "data.image_size=32",
        "model/regularizer=lecam",
    )
    model = hydra.utils.instantiate(make_cfg(*base).model)  # no input gradients: BN is fine
    assert isinstance(model.regularizer, nn.Module)
    assert "regularizer.anchor_real" in model.state_dict()
    with_r1 = (
        "model.regularizer.penalties={_target_: gan_lab.models.regularizers.DiscriminatorRegularizer, r1_gamma: 1.0}",
    )
    with pytest.raises(Exception) as info:
        hydra.utils.instantiate(make_cfg(*base, *with_r1).model)
    error = find_user_error(info.value)
    assert isinstance(error, ConfigError) and error.key == "model.regularizer"
