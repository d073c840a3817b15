"""ADA (Karras et al. 2020, "Training GANs with Limited Data"): adaptive discriminator augmentation.

Every image D sees (reals and fakes, in the D and the G step) goes through the same differentiable
pipeline; each transform is applied to each sample independently with probability ``p``. ``p`` is
steered by the overfitting heuristic r_t = E[sign(D(x_real))], D's scores measured from the
loss's decision point (``AdversarialLoss.real_margin``: 0 for logistic and hinge losses, 0.5 for
LSGAN, the paired fake's score for RpGAN, whose scores have no zero point of their own).
Every ``interval`` D steps it moves by ``images seen / (speed_kimg * 1000)`` up when r_t > target
(D is too sure of the reals) and down otherwise, so it can go from 0 to 1 in ``speed_kimg``
thousand images. Below p ~ 0.8 the augmentations do not leak into G's samples (the paper's
finding), hence the clamp ``max_p``.

The colour, translation and cutout ops are DiffAugment's (models/augment.py); x-flips and
90-degree rotations are added here. Everything ``p`` depends on lives in buffers, updated with
tensor ops only (no host sync), so it is checkpointed with the model and exact on resume; under
DDP the sign sums are all-reduced, so every rank steers the same ``p``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gan_lab.errors import ConfigError
from gan_lab.models.augment import brightness, contrast, cutout, saturation, translation


def xflip(x: Tensor) -> Tensor:
    """Mirror left-right."""
    return x.flip(3)


def rotate90(x: Tensor) -> Tensor:
    """Rotate each (square) image by a random multiple of 90 degrees."""
    k = torch.randint(0, 4, (x.shape[0], 1, 1, 1), device=x.device)
    out = x
    for turns in (1, 2, 3):
        out = torch.where(k == turns, torch.rot90(x, turns, dims=(2, 3)), out)
    return out


TRANSFORMS: dict[str, Callable[[Tensor], Tensor]] = {
    "xflip": xflip,
    "rotate90": rotate90,
    "translation": translation,  # integer shift up to 1/8 of the size, as ADA's xint
    "brightness": brightness,
    "contrast": contrast,
    "saturation": saturation,
    "cutout": cutout,  # a square half the image size, as ADA's cutout
}
DEFAULT_TRANSFORMS = tuple(TRANSFORMS)


class AdaptiveAugment(nn.Module):
    """The ADA pipeline with its ``p`` controller; ``observe(real_logits)`` after each D forward."""

    def __init__(
        self,
        transforms: Sequence[str] = DEFAULT_TRANSFORMS,
        target: float = 0.6,
        interval: int = 4,
        speed_kimg: float = 500.0,
        initial_p: float = 0.0,
        max_p: float = 0.99,
    ) -> None:
        super().__init__()
        names = list(transforms)
        unknown = [t for t in names if t not in TRANSFORMS]
        if unknown or not names:
            raise ConfigError(
                "model.augment.transforms",
                names,
                f"choose a non-empty list from {list(TRANSFORMS)}",
            )
        if not 0.0 < target < 1.0:
            raise ConfigError("model.augment.target", target, "must be in (0, 1), e.g. 0.6")
        if not isinstance(interval, int) or interval < 1:
            raise ConfigError("model.augment.interval", interval, "must be an integer >= 1")
        if not speed_kimg > 0:
            raise ConfigError("model.augment.speed_kimg", speed_kimg, "must be > 0, e.g. 500")
        if not 0.0 < max_p <= 1.0:
            raise ConfigError("model.augment.max_p", max_p, "must be in (0, 1]")
        if not 0.0 <= initial_p <= max_p:
            raise ConfigError("model.augment.initial_p", initial_p, f"must be in [0, {max_p}]")
        self.names, self.transforms = names, [TRANSFORMS[t] for t in names]
        self.target, self.interval, self.speed_kimg, self.max_p = (
            target,
            interval,
            speed_kimg,
            max_p,
        )
        self.register_buffer("p", torch.tensor(float(initial_p)))
        self.register_buffer("rt", torch.tensor(0.0))  # r_t of the last finished interval
        # this interval's sum of sign(D(real)) and number of real images, over all ranks
        self.register_buffer("sign_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("observed", torch.zeros((), dtype=torch.int64))  # D steps seen

    def forward(self, x: Tensor) -> Tensor:
        # the random draws do not depend on p: the RNG stream is the same whatever p is
        for transform in self.transforms:
            apply = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < self.p
            x = torch.where(apply, transform(x), x)
        return x.contiguous()

    @torch.no_grad()
    def observe(self, real_logits: Tensor) -> dict[str, Tensor]:
        """Add one D step's real scores (``loss.real_margin``: positive = D calls it real); every
        ``interval``-th call updates ``p``. Returns the scalars to log (``augment/p``, ``augment/rt``)."""
        logits = real_logits.detach().float()
        count = logits.new_tensor(float(logits.numel()))
        stats = torch.stack([logits.sign().sum(), count]).to(self.sign_sum)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(stats)  # the global batch's signs: the same p on every rank
        self.sign_sum += stats[0]
        self.count += stats[1]
        self.observed += 1
        due = self.observed % self.interval == 0
        rt = self.sign_sum / self.count.clamp_min(1.0)
        step = torch.sign(rt - self.target) * self.count / (self.speed_kimg * 1000.0)
        new_p = (self.p.double() + step).clamp(0.0, self.max_p).to(self.p.dtype)
        self.p.copy_(torch.where(due, new_p, self.p))
        self.rt.copy_(torch.where(due, rt.to(self.rt.dtype), self.rt))
        self.sign_sum.masked_fill_(due, 0.0)
        self.count.masked_fill_(due, 0.0)
        return {"augment/p": self.p.clone(), "augment/rt": self.rt.clone()}

    def extra_repr(self) -> str:
        return (
            f"transforms={self.names}, target={self.target}, interval={self.interval}, "
            f"speed_kimg={self.speed_kimg}, max_p={self.max_p}"
        )
