"""Lightning internals that the per-step fast paths (issue 16) read, each behind one small function.

Kept apart so that one module owns every private access (to be folded into
``gan_lab/lightning_internals.py``); pinned to Lightning 2.6.
"""

from __future__ import annotations

import lightning as L


def logger_step(trainer: L.Trainer) -> int:
    """The step axis Lightning's own ``self.log`` writes at during a training batch."""
    return int(trainer.fit_loop.epoch_loop._batches_that_stepped)


def logger_writes(trainer: L.Trainer | None) -> bool:
    """True on the batches whose logged scalars reach the loggers (``trainer.log_every_n_steps``)."""
    if trainer is None:
        return True
    connector = getattr(trainer, "_logger_connector", None)
    return bool(getattr(connector, "should_update_logs", True))
