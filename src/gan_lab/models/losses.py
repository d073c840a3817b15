"""Adversarial losses on logits / raw critic scores: one small class per loss family.

Each class says what it is (class attributes), so nothing else in the project names a loss:
the health monitor reads ``bounded_below``, the compatibility check reads ``needs_lipschitz``,
the training step reads ``relativistic``, the logged D(x) reads ``outputs_probability``, and
ADA reads ``real_margin`` (where a D score stops saying "real").
A YAML in ``configs/model/loss/`` builds one by ``_target_``.

All losses cast D's raw outputs to fp32 first: softplus of a bf16 logit loses the small losses
that matter once D gets good.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor


class AdversarialLoss(ABC):
    """Base class: subclasses set the properties below and implement ``d_loss`` / ``g_loss``."""

    # the D loss has a floor (0): the health monitor's "D loss at its floor" signal uses it
    bounded_below: bool = True
    # diverges unless D is Lipschitz (gradient penalty or spectral norm): warned at build time
    needs_lipschitz: bool = False
    # sigmoid(D) is a probability: D(x) is plotted as one
    outputs_probability: bool = False
    # the G loss also compares against D's logits on real images (RpGAN-style)
    relativistic: bool = False

    def __init__(self, name: str | None = None) -> None:
        # for logs, checkpoints and sweep summaries: NonSaturatingLoss -> "non_saturating"
        stem = type(self).__name__.removesuffix("Loss")
        self.name = name or re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", stem).lower()

    @abstractmethod
    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """D's loss, a scalar: lower when real scores high and fake scores low."""

    @abstractmethod
    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        """G's loss, a scalar; ``real_logits`` is passed only when ``relativistic`` is True."""

    def real_margin(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """D's real scores measured from this loss's decision point, so that a positive value
        means "D calls this real": ADA's overfitting heuristic r_t = E[sign(.)] reads them.
        Logistic and hinge losses separate real from fake at a score of 0."""
        return real_logits

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _LogisticLoss(AdversarialLoss):
    """D is a logistic classifier: -log sigmoid(r) - log(1 - sigmoid(f)), via softplus."""

    outputs_probability = True

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()


class MinimaxLoss(_LogisticLoss):
    """Goodfellow et al. 2014 as written: G minimises log(1 - D(G(z))), which saturates early."""

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -F.softplus(fake_logits.float()).mean()


class NonSaturatingLoss(_LogisticLoss):
    """Goodfellow et al.'s practical variant: G maximises log D(G(z)) (-log sigmoid(f))."""

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return F.softplus(-fake_logits.float()).mean()


class HingeLoss(AdversarialLoss):
    """Lim & Ye 2017 / Miyato et al. 2018: D is penalised only inside the margin [-1, 1]."""

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(1.0 - real_logits.float()).mean() + F.relu(1.0 + fake_logits.float()).mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -fake_logits.float().mean()


class LSGANLoss(AdversarialLoss):
    """Mao et al. 2017 with target codes a=0 (fake), b=1 (real), c=1 (what G wants)."""

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return 0.5 * ((real_logits.float() - 1.0).pow(2).mean() + fake_logits.float().pow(2).mean())

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return 0.5 * (fake_logits.float() - 1.0).pow(2).mean()

    def real_margin(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """Codes 0 (fake) and 1 (real): the decision point is halfway, at 0.5."""
        return real_logits - 0.5


class WassersteinLoss(AdversarialLoss):
    """Arjovsky et al. 2017: the critic's mean score gap; unbounded, so D must be Lipschitz."""

    bounded_below = False
    needs_lipschitz = True

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return fake_logits.float().mean() - real_logits.float().mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -fake_logits.float().mean()

    def real_margin(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """A critic's scores have no zero point (adding a constant changes no loss): measured
        from the mean fake score."""
        return real_logits - fake_logits.detach().mean()


class RpGANLoss(AdversarialLoss):
    """Relativistic pairing loss (Jolicoeur-Martineau 2019), as R3GAN uses it (Huang et al. 2024).

    Each real is paired with a fake of the same batch position: D is trained to score the real
    above its fake, ``softplus(-(D(x_r) - D(x_f)))``, and G to score its fake above the real,
    ``softplus(-(D(x_f) - D(x_r)))``. With zero-centred R1 and R2 penalties
    (model/regularizer=r1r2) the paper proves local convergence, which it finds plain RpGAN lacks.
    Only differences of scores matter, so a D(x) alone is no probability.
    """

    relativistic = True

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name or "rpgan")  # not "rp_gan"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.softplus(fake_logits.float() - real_logits.float()).mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        if real_logits is None:
            raise ValueError("RpGAN's G loss pairs each fake with a real: pass real_logits")
        return F.softplus(real_logits.float() - fake_logits.float()).mean()

    def real_margin(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """Only differences of scores matter: each real measured from its paired fake, the
        margin this loss trains."""
        return real_logits - fake_logits.detach()


def discriminator_score(logits: Tensor, loss: AdversarialLoss) -> Tensor:
    """What to plot as D(x): the mean probability for logistic losses, the mean score otherwise."""
    logits = logits.detach().float()
    return torch.sigmoid(logits).mean() if loss.outputs_probability else logits.mean()
