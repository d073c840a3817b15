"""Per-batch training scalars: kept on the module every batch, sent to the loggers only when written.

Lightning's ``self.log`` costs ~1.6 ms of Python per call on a logged batch (its ResultCollection
moves every metric's state to the value's device; cProfile of the MNIST MLP step, docs/benchmarks.md),
and ~0.1 ms on the others. So the module keeps the latest values in ``GANModule.step_stats``
(detached tensors: no host sync), and on the batches the loggers write, ``write_scalars`` copies a
batch's scalars to the host in one transfer and hands them to the loggers and to
``trainer.callback_metrics`` directly. Callbacks that watch every batch (divergence guard, health
monitor) collect ``StepStats.stacked`` tensors and read them in bulk on those batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor

from gan_lab.lightning_internals import next_logged_step


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

    def stacked(self, keys: Sequence[str]) -> Tensor:
        """The values of ``keys`` (all present) as one fp32 tensor, left on the device: no sync."""
        return torch.stack([self[k].detach().float().reshape(()) for k in keys])

    def floats(self) -> dict[str, float]:
        """All values as Python floats: one device-to-host copy per batch, however many readers."""
        if self._floats is None:
            keys = list(self)
            values = self.stacked(keys).tolist() if keys else []
            self._floats = dict(zip(keys, values, strict=True))
        return self._floats


def host_floats(metrics: Mapping[str, Tensor | float]) -> dict[str, float]:
    """``metrics`` as Python floats, all tensors copied to the host in one transfer."""
    tensor_keys = [k for k, v in metrics.items() if isinstance(v, Tensor)]
    floats = {k: float(v) for k, v in metrics.items() if not isinstance(v, Tensor)}
    if tensor_keys:
        stacked = torch.stack([metrics[k].detach().float().reshape(()) for k in tensor_keys])
        floats.update(zip(tensor_keys, stacked.tolist(), strict=True))
    return {k: floats[k] for k in metrics}


def write_scalars(
    trainer: L.Trainer | None,
    metrics: Mapping[str, Tensor | float],
    prog_bar: Iterable[str] = (),
) -> None:
    """What ``self.log`` does for a training batch's scalars, without its per-call bookkeeping.

    The loggers get the values at the step Lightning's own logging uses, ``callback_metrics``
    (final results, sweeps, checkpoint monitors) and the progress bar see them too.
    """
    if trainer is None or not metrics:
        return
    floats = host_floats(metrics)
    trainer.callback_metrics.update({k: torch.tensor(v) for k, v in floats.items()})
    trainer.progress_bar_metrics.update({k: floats[k] for k in prog_bar if k in floats})
    step = next_logged_step(trainer)
    for logger in trainer.loggers:
        logger.log_metrics({**floats, "epoch": trainer.current_epoch}, step=step)


def latest_scalar(trainer: L.Trainer, pl_module: Any, key: str) -> float | None:
    """This batch's value of ``key`` (e.g. ``loss/d``), or the logged one for other modules."""
    stats = getattr(pl_module, "step_stats", None)
    if isinstance(stats, StepStats) and key in stats:
        return stats.floats()[key]
    value = trainer.callback_metrics.get(key)
    return float(value) if value is not None else None
