"""How long a run is: ``trainer.max_steps`` (G updates) or ``trainer.max_kimg`` (thousands of real
images shown to D, the unit GAN papers budget in), turned into the one number the Trainer counts.

A G update follows ``model.n_critic`` D updates, each on one global batch of ``data.batch_size``
real images (``model.accumulate`` splits that batch into micro-batches, it does not add images), so

    G steps = ceil(max_kimg * 1000 / (data.batch_size * model.n_critic)).

The conversion happens before the Trainer is built; the composed config keeps both keys, so the
saved config says what the user asked for.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig

from gan_lab.errors import ConfigError


def images_per_g_step(batch_size: int, n_critic: int) -> int:
    """Real images D sees per G update, all ranks together."""
    return batch_size * n_critic


def g_steps_for_kimg(max_kimg: float, batch_size: int, n_critic: int) -> int:
    """The fewest G steps that show D at least ``max_kimg`` thousand real images."""
    return max(1, math.ceil(round(max_kimg * 1000, 6) / images_per_g_step(batch_size, n_critic)))


def resolved_max_steps(cfg: DictConfig) -> Any:
    """``trainer.max_steps`` after ``trainer.max_kimg``: a ConfigError when both are set and disagree."""
    trainer = cfg.get("trainer") or {}
    max_steps, max_kimg = trainer.get("max_steps"), trainer.get("max_kimg")
    if max_kimg is None:
        return max_steps
    if isinstance(max_kimg, bool) or not isinstance(max_kimg, int | float) or max_kimg <= 0:
        raise ConfigError(
            "trainer.max_kimg", max_kimg, "must be a positive number of thousands of real images, e.g. 500"
        )  # fmt: skip
    batch, n_critic = cfg.data.batch_size, cfg.model.get("n_critic", 1)
    steps = g_steps_for_kimg(float(max_kimg), int(batch), int(n_critic))
    if max_steps not in (None, -1, steps):
        raise ConfigError(
            "trainer.max_steps",
            max_steps,
            f"disagrees with trainer.max_kimg={max_kimg} (= {steps} G steps of "
            f"data.batch_size={batch} x model.n_critic={n_critic} real images); set one of them: "
            "trainer.max_steps=null to budget in kimg, or trainer.max_kimg=null to count G steps",
        )
    return steps
