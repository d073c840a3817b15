"""What Lightning leaves out of a checkpoint for an *exact* resume: RNG states and TensorBoard's step.

Lightning restores weights, optimizers, schedulers, loop counters and stateful dataloaders, but
not the random number generators: a resumed run would draw different noise than the straight
run. This callback stores torch/numpy/python (and CUDA) RNG states of every rank and puts them
back just before the first resumed batch. It also tells TensorBoard to drop points a killed run
logged after its last checkpoint, so resumed curves have neither gaps nor duplicates.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.loggers import TensorBoardLogger

from gan_lab.lightning_internals import next_logged_step
from gan_lab.loggers import event_file_writer

log = logging.getLogger(__name__)


def capture_rng() -> dict[str, Any]:
    """This process's RNG states as tensors and plain containers (``weights_only``-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (
            kind,
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _gather_per_rank(state: dict[str, Any]) -> list[dict[str, Any]]:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [state]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, state)
    return gathered


def purge_tensorboard_after(logger: TensorBoardLogger, step: int) -> None:
    """Write TensorBoard's restart marker: readers discard earlier points at ``step`` or later."""
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog

    file_writer = event_file_writer(logger)
    file_writer.add_event(
        Event(wall_time=time.time(), step=step, session_log=SessionLog(status=SessionLog.START))
    )
    file_writer.flush()


class ResumeState(L.Callback):
    """Saves RNG states per rank; on resume restores them and marks the TensorBoard restart."""

    def __init__(self) -> None:
        self._pending: list[dict[str, Any]] | None = None
        self._mark_restart = False

    def state_dict(self) -> dict[str, Any]:
        return {"rng_per_rank": _gather_per_rank(capture_rng())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = list(state_dict.get("rng_per_rank", [])) or None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is None:
            return
        # Restored here, the latest point before the first resumed batch: anything that drew random
        # numbers while the run was being rebuilt no longer matters.
        rank = trainer.global_rank
        if rank < len(self._pending):
            restore_rng(self._pending[rank])
        else:
            log.warning(
                "checkpoint holds RNG states of %d ranks, this run has rank %d: not restored",
                len(self._pending),
                rank,
            )
        self._pending = None
        self._mark_restart = True

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if not self._mark_restart:
            return
        self._mark_restart = False
        # The first resumed batch logs at this step (Lightning advances the counter after
        # on_train_start); whatever a killed run logged from here on is superseded.
        step = next_logged_step(trainer)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    purge_tensorboard_after(logger, step)
