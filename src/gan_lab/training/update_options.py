"""The GAN update's own options, checked when the module is built (one-line ``ConfigError``s)."""

from __future__ import annotations

from typing import Any

from gan_lab.errors import ConfigError
from gan_lab.training.lr_schedule import check_lr_schedule


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_update_options(
    n_critic: Any,
    accumulate: Any,
    lr_schedule: Any,
    lr_decay_start: Any,
    grad_clips: tuple[Any, Any],
    regularizer: object,
) -> None:
    """D updates per G update, micro-batches per update, the LR schedule, per-network clipping."""
    if not _is_count(n_critic):
        raise ConfigError(
            "model.n_critic", n_critic, "must be an integer >= 1 (D updates per G update)"
        )
    if not _is_count(accumulate):
        raise ConfigError(
            "model.accumulate",
            accumulate,
            "must be an integer >= 1 (micro-batches per D and per G update)",
        )
    if accumulate > 1 and not getattr(regularizer, "splits_over_micro_batches", True):
        raise ConfigError(
            "model.accumulate",
            accumulate,
            f"{type(regularizer).__name__} keeps state updated once per D batch, which micro-batches "
            "would update N times; use model.accumulate=1 with it (or a larger data.batch_size)",
        )
    check_lr_schedule(lr_schedule, lr_decay_start)
    for net, clip in zip("gd", grad_clips, strict=True):
        if clip is not None and (not isinstance(clip, int | float) or clip <= 0):
            raise ConfigError(
                f"model.grad_clip_{net}", clip, "must be > 0, or null to disable clipping"
            )
