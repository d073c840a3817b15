"""LeCam regularization (Tseng et al. 2021, "Regularizing Generative Adversarial Networks under
Limited Data"): keep D's outputs on reals and fakes from drifting apart.

    R_LC = mean(relu(D(x_real) - anchor_fake)^2) + mean(relu(anchor_real - D(x_fake))^2)

where the anchors are exponential moving averages (decay 0.99) of D's mean output on reals and on
fakes. The paper links this to the LeCam divergence, which is more robust than the JS divergence
when D can memorise a small training set; it complements augmentation (DiffAugment / ADA).
The anchors are buffers, so they are checkpointed with the model; under DDP the batch means are
averaged over ranks first, so every rank holds the same anchors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lab.errors import ConfigError
from gan_lab.models.regularizers import DiscriminatorRegularizer

Critic = Callable[[Tensor, Tensor | None], Tensor]


def lecam_penalty(
    real_logits: Tensor, fake_logits: Tensor, anchor_real: Tensor, anchor_fake: Tensor
) -> Tensor:
    """The LeCam term for given anchors (fp32)."""
    real, fake = real_logits.float(), fake_logits.float()
    return F.relu(real - anchor_fake).pow(2).mean() + F.relu(anchor_real - fake).pow(2).mean()


class LeCamRegularizer(nn.Module):
    """``weight * R_LC`` with EMA anchors, optionally plus gradient penalties (``penalties``).

    Until ``start_step`` D updates have been seen (and at the first one), the anchors copy the
    current means instead of averaging them, so they never start from an arbitrary value.
    """

    def __init__(
        self,
        weight: float = 0.3,
        decay: float = 0.99,
        start_step: int = 0,
        penalties: DiscriminatorRegularizer | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(weight, int | float) or weight < 0:
            raise ConfigError("model.regularizer.weight", weight, "must be a number >= 0")
        if not 0.0 <= decay < 1.0:
            raise ConfigError("model.regularizer.decay", decay, "must be in [0, 1), e.g. 0.99")
        if not isinstance(start_step, int) or start_step < 0:
            raise ConfigError("model.regularizer.start_step", start_step, "must be an integer >= 0")
        self.weight, self.decay, self.start_step = float(weight), decay, start_step
        self.penalties = penalties
        self.register_buffer("anchor_real", torch.zeros(()))
        self.register_buffer("anchor_fake", torch.zeros(()))
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    # the anchors move once per call: micro-batches (model.accumulate) would move them N times
    splits_over_micro_batches = False

    @property
    def needs_input_gradients(self) -> bool:
        return self.penalties is not None and self.penalties.needs_input_gradients

    @torch.no_grad()
    def update_anchors(self, real_logits: Tensor, fake_logits: Tensor) -> None:
        means = torch.stack(
            [real_logits.detach().float().mean(), fake_logits.detach().float().mean()]
        )
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(means)
            means /= dist.get_world_size()
        averaging = self.updates >= max(self.start_step, 1)
        decay = torch.where(averaging, self.decay, 0.0)
        self.anchor_real.mul_(decay).add_((1 - decay) * means[0])
        self.anchor_fake.mul_(decay).add_((1 - decay) * means[1])
        self.updates += 1

    def forward(
        self,
        *inputs: Any,
        real_logits: Tensor | None = None,
        fake_logits: Tensor | None = None,
        y_fake: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The call of :class:`DiscriminatorRegularizer` (``inputs``: discriminator, real, fake,
        y, d_step), handed on to ``penalties``; LeCam itself needs this step's logits."""
        if real_logits is None or fake_logits is None:
            raise ValueError("LeCam regularization needs D's logits of this step")
        self.update_anchors(real_logits, fake_logits)
        term = lecam_penalty(real_logits, fake_logits, self.anchor_real, self.anchor_fake)
        total, logs = self.weight * term, {"penalty/lecam": term.detach()}
        logs |= {
            "lecam/anchor_real": self.anchor_real.clone(),
            "lecam/anchor_fake": self.anchor_fake.clone(),
        }
        if self.penalties is not None:
            extra, extra_logs = self.penalties(*inputs[:5], y_fake=y_fake)
            total, logs = total + extra, logs | extra_logs
        return total, logs

    def extra_repr(self) -> str:
        return f"weight={self.weight}, decay={self.decay}, start_step={self.start_step}"
