"""Per-batch training scalars: kept on the module every batch, sent to the loggers only when written.

Lightning's ``self.log`` costs ~0.1-0.3 ms of Python per key and call (it moves each metric's state
to the value's device). Logging the losses and D scores of every batch cost ~5% of a small model's
step, although the loggers keep one batch in ``trainer.log_every_n_steps``. So the module keeps
the latest values in ``GANModule.step_stats`` (detached tensors: no host sync), logs them on the
batches the loggers write, and callbacks that watch every batch (divergence guard, health monitor)
read them with ``latest_scalar``.
"""

from __future__ import annotations

from typing import Any

import lightning as L


def logger_writes(trainer: L.Trainer | None) -> bool:
    """True on the batches whose logged scalars reach the loggers (``trainer.log_every_n_steps``)."""
    if trainer is None:
        return True
    connector = getattr(trainer, "_logger_connector", None)
    return bool(getattr(connector, "should_update_logs", True))


def latest_scalar(trainer: L.Trainer, pl_module: Any, key: str) -> float | None:
    """This batch's value of ``key`` (e.g. ``loss/d``), or the logged one for other modules."""
    stats = getattr(pl_module, "step_stats", None)
    value = stats.get(key) if stats is not None else None
    if value is None:
        value = trainer.callback_metrics.get(key)
    return float(value) if value is not None else None
