"""Per-batch training scalars: kept on the module every batch, sent to the loggers only when written.

Lightning's ``self.log`` costs ~0.1-0.3 ms of Python per key and call (it moves each metric's state
to the value's device). Logging the losses and D scores of every batch cost ~5% of a small model's
step, although the loggers keep one batch in ``trainer.log_every_n_steps``. So the module keeps
the latest values in ``GANModule.step_stats`` (detached tensors: no host sync), logs them on the
batches the loggers write, and callbacks that watch every batch (divergence guard, health monitor)
read them with ``latest_scalar``. On a GPU each ``float(tensor)`` waits for the device; the callbacks
read six scalars a batch, so ``StepStats`` moves all of a batch's values to the host in one transfer.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor


class StepStats(dict[str, Tensor]):
    """This batch's detached scalar tensors; ``floats()`` copies them all to the host at once."""

    def __init__(self) -> None:
        super().__init__()
        self._floats: dict[str, float] | None = None

    def __setitem__(self, key: str, value: Tensor) -> None:
        self._floats = None
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._floats = None
        super().update(*args, **kwargs)

    def floats(self) -> dict[str, float]:
        """All values as Python floats: one device-to-host copy per batch, however many readers."""
        if self._floats is None:
            keys = list(self)
            values = (
                torch.stack([self[k].float().reshape(()) for k in keys]).tolist() if keys else []
            )
            self._floats = dict(zip(keys, values, strict=True))
        return self._floats


def latest_scalar(trainer: L.Trainer, pl_module: Any, key: str) -> float | None:
    """This batch's value of ``key`` (e.g. ``loss/d``), or the logged one for other modules."""
    stats = getattr(pl_module, "step_stats", None)
    if isinstance(stats, StepStats) and key in stats:
        return stats.floats()[key]
    value = trainer.callback_metrics.get(key)
    return float(value) if value is not None else None
