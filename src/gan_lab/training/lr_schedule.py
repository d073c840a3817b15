"""The learning-rate schedule of both networks, as a factor of the base LR per G step.

``linear`` holds the base LR until ``decay_start`` (a fraction of the run's G steps) and then
decays it linearly to 0 at the last step: for a fixed budget, annealing the LR to zero at its end
is the schedule that budgeted training favours (Li et al. 2020, "Budgeted Training"), and the G
EMA then averages the low-LR tail. ``decay_start=0`` decays from the first step (TTUR / SNGAN's
schedule); 0.5 trains at full LR for the first half.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gan_lab.errors import ConfigError

LR_SCHEDULES = ("constant", "linear")


def check_lr_schedule(lr_schedule: Any, decay_start: Any) -> None:
    """One-line errors for an unknown schedule or a decay start outside [0, 1)."""
    if lr_schedule not in LR_SCHEDULES:
        raise ConfigError(
            "model.lr_schedule", lr_schedule, f"choose one of {', '.join(LR_SCHEDULES)}"
        )
    if (
        isinstance(decay_start, bool)
        or not isinstance(decay_start, int | float)
        or not (0.0 <= decay_start < 1.0)
    ):
        raise ConfigError(
            "model.lr_decay_start",
            decay_start,
            "the fraction of trainer.max_steps after which the linear decay starts: 0 <= x < 1",
        )


def linear_decay(total_steps: int, decay_start: float = 0.0) -> Callable[[int], float]:
    """LR factor per G step: 1 until ``decay_start * total_steps``, then linearly to 0 at the end."""
    start = decay_start * total_steps
    span = total_steps - start

    def factor(g_step: int) -> float:
        if g_step <= start:
            return 1.0
        return max(0.0, 1.0 - (g_step - start) / span)

    return factor
