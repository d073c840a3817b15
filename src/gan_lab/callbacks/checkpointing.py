"""Checkpoints that survive SIGKILL, and pre-emption signals that end in a resumable checkpoint.

Builds on Lightning: its SIGTERM handler only sets ``trainer.received_sigterm`` and ends the fit
after the current batch; its SLURM handler (SIGUSR1 with auto-requeue) saves an ``hpc_ckpt`` from
inside the signal handler, i.e. possibly half-way through a step. Here every stop signal
(SIGTERM, SIGINT, SIGUSR1) is only *recorded*; at the end of the batch, where the state is
consistent, ``last.ckpt`` is written (atomically) and the run stops. A deferred SLURM handler then
still requeues the job. A second SIGINT interrupts at once, as Ctrl+C usually does.
"""

from __future__ import annotations

import ast
import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gan_lab.callbacks.progress import training_progress
from gan_lab.checkpoint_io import AtomicCheckpointIO, remove_stale_temp_files
from gan_lab.lightning_internals import stop_after_this_batch

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


def use_atomic_checkpoint_io(trainer: L.Trainer) -> None:
    """Route ``trainer.save_checkpoint`` through the atomic, digest-sealing writer (once per run)."""
    strategy = trainer.strategy
    if type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()
    elif not isinstance(strategy.checkpoint_io, AtomicCheckpointIO):
        log.warning(
            "checkpoint IO %s is not atomic; a killed run may leave a torn checkpoint",
            strategy.checkpoint_io,
        )


class SafeCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` with atomic writes and a resumable ``last.ckpt`` on SIGTERM/SIGINT/SIGUSR1."""

    def __init__(self, *args: Any, handle_signals: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handle_signals = handle_signals
        self.received_signal: int | None = None
        self._previous: dict[int, Any] = {}
        self._saved_batch = -1

    # ------------------------------------------------------------------ state across resumes
    @property
    def state_key(self) -> str:
        # Lightning keys a ModelCheckpoint's state by its cadence too, so a resume with another
        # every_n_train_steps restored nothing (with a warning) and its version counter, not knowing
        # the last.ckpt it resumed from, wrote last-v1.ckpt beside it. Keyed by what it tracks
        # and the files it names, two periodic checkpointers of one run still differ.
        return self._generate_state_key(
            monitor=self.monitor, mode=self.mode, filename=self.filename
        )

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Checkpoints written before the key above hold the state under Lightning's key (monitor,
        # mode and cadence): adopt the one of this monitor and mode (load_state_dict then reads it).
        states = checkpoint.get("callbacks") or {}
        if self.state_key in states:
            return
        legacy = [key for key in states if self._is_lightning_key_of_this_monitor(key)]
        if len(legacy) == 1:
            states[self.state_key] = states[legacy[0]]

    def _is_lightning_key_of_this_monitor(self, key: object) -> bool:
        """``key`` is ModelCheckpoint's own state key (a class name, then the repr of a dict that
        holds the cadence) for this class, monitor and mode."""
        prefix = type(self).__qualname__
        if not isinstance(key, str) or not key.startswith(prefix + "{"):
            return False
        try:
            fields = ast.literal_eval(key[len(prefix) :])
        except (ValueError, SyntaxError):  # e.g. a train_time_interval's timedelta repr
            return False
        return (
            isinstance(fields, dict)
            and "every_n_train_steps" in fields
            and fields.get("monitor") == self.monitor
            and fields.get("mode") == self.mode
        )

    # ------------------------------------------------------------------ atomic writes
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        use_atomic_checkpoint_io(trainer)
        if trainer.is_global_zero and self.dirpath and remove_stale_temp_files(self.dirpath):
            log.info("removed temp files of an interrupted checkpoint write in %s", self.dirpath)

    # ------------------------------------------------------------------ signals
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        # Registered after Lightning's own handlers (trainer._run), which we chain to later.
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._record_signal)
            log.info(
                "training; SIGTERM, SIGINT or SIGUSR1 saves a resumable checkpoint in %s",
                self.dirpath,
            )

    def _record_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.received_signal == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl+C: stop now, without waiting for the batch
        log.warning(
            "received %s: saving a resumable checkpoint after this batch",
            signal.Signals(signum).name,
        )
        self.received_signal = signum
        if signum == signal.SIGTERM:
            # Lightning's handler: sets trainer.received_sigterm and tells the DDP peers
            self._call_previous(signum, frame)

    def _call_previous(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)

    def _restore_handlers(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        signum = self.received_signal or (signal.SIGTERM if trainer.received_sigterm else None)
        if trainer.world_size > 1:  # saving is collective: all ranks save if any rank was signalled
            if not trainer.strategy.reduce_boolean_decision(signum is not None, all=False):
                return
            signum = signum or signal.SIGTERM
        if signum is None:
            return
        self.save_resumable(trainer)
        if signum == signal.SIGUSR1:
            self._call_previous(signum, None)  # e.g. Lightning's SLURM requeue, now at a safe point
        # Stop the way Lightning stops on SIGTERM: after this batch's scalars are logged (a resumed
        # curve has no gap), with SIGTERMException from the loop, on every rank.
        stop_after_this_batch(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        # A signal that arrived between two batches: the state after the last batch is consistent.
        # (single process only: a save is collective, and peers may not have seen the signal)
        stopped = isinstance(exception, SIGTERMException | KeyboardInterrupt)
        if stopped and self.received_signal is not None and trainer.world_size == 1:
            self.save_resumable(trainer)
        self._restore_handlers()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        # The final state, not the last periodic one: eval/sample/resume start from last.ckpt.
        if self.save_last and not trainer.fast_dev_run and not trainer.sanity_checking:
            self.save_resumable(trainer)
        self._restore_handlers()

    def save_resumable(self, trainer: L.Trainer) -> None:
        """Write ``last.ckpt`` for the current batch unless that already happened."""
        batch = trainer.fit_loop.epoch_loop.batch_progress.total.processed
        if batch == self._saved_batch or self.dirpath is None:
            return
        path = str(Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}")
        self.last_model_path = path  # before saving: the restored callback must know its last.ckpt
        trainer.save_checkpoint(path, weights_only=False)  # resumable: optimizers, loops, callbacks
        self._saved_batch = batch
        progress = training_progress(trainer, trainer.lightning_module)
        log.warning("saved resumable checkpoint %s (%s)", path, progress.describe())

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if Path(filepath).name == f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}":
            self._saved_batch = trainer.fit_loop.epoch_loop.batch_progress.total.processed
        progress = training_progress(trainer, trainer.lightning_module)
        log.info("saved checkpoint %s (%s)", filepath, progress.describe())

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # where the run is, in the units papers use: g_step, d_updates, images_shown, kimg
        checkpoint["progress"] = training_progress(trainer, pl_module).as_dict()
