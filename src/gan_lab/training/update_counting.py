"""A G step is an applied G update: guards that drop an update tell the module here.

A guard learns of a bad update either before the step (a host check: ``skip_update``, so the
step is never counted) or after it, in bulk, when a fused optimizer dropped it on the device
(``forget_g_steps``: the counted steps are taken back). Either way ``trainer.max_steps`` means
applied G updates; a dropped update's LR-schedule and EMA ticks, taken before it was known, stay.
"""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer

from gan_lab.lightning_internals import uncount_steps


class CountsAppliedUpdates:
    """Mixin for the GAN LightningModule (it provides ``trainer``; its ``__init__`` sets
    ``skipped_updates`` to an empty set)."""

    trainer: Any
    skipped_updates: set[int]  # optimizers (by id) whose update a guard dropped this batch

    def skip_update(self, optimizer: Optimizer) -> None:
        """This batch's update of ``optimizer`` was dropped before the step: do not count it."""
        self.skipped_updates.add(id(optimizer))

    def forget_g_steps(self, n: int) -> None:
        """``n`` counted G updates were dropped on the device: take them back."""
        uncount_steps(self.trainer, n)
