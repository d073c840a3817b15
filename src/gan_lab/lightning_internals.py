"""Every touch of Lightning's private attributes, in one place.

Lightning has no public API for five things gan-lab needs: an optimizer step that does not
advance ``global_step`` (only applied G steps count), "will the loggers write this batch?", "stop after
this batch the way SIGTERM stops", the step the next logged scalar will carry, and callback hooks
dispatched only to the callbacks that define them. Each is a
small function here, so a Lightning upgrade that renames one breaks one function and one test
(tests/test_lightning_internals.py, pinned to the version range in pyproject.toml), not the
training step silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint, EarlyStopping
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.trainer import call as lightning_call


@contextmanager
def step_not_counted(optimizer: Any, trainer: L.Trainer) -> Iterator[None]:
    """Inside this block, ``optimizer.step()`` does not advance ``trainer.global_step``.

    ``LightningOptimizer.step`` calls ``_on_before_step`` / ``_on_after_step`` around the step;
    manual optimization installs hooks there that advance the optimizer-step progress, which is
    what ``global_step`` reads. Replacing them for D's step (keeping the profiler's timing) makes
    ``global_step`` count G updates only, so ``trainer.max_steps`` means generator steps.
    """
    before, after = optimizer._on_before_step, optimizer._on_after_step
    profiler = trainer.profiler
    optimizer._on_before_step = lambda: profiler.start("optimizer_step")
    optimizer._on_after_step = lambda: profiler.stop("optimizer_step")
    try:
        yield
    finally:
        optimizer._on_before_step, optimizer._on_after_step = before, after


def count_step(optimizer: Any) -> None:
    """Advance ``global_step`` by one for an update made inside :func:`step_not_counted`.

    G's step runs uncounted; once it is known that the update was applied (a guard may have
    dropped it), this calls the manual-optimization hooks the step would have called.
    """
    optimizer._on_before_step()
    optimizer._on_after_step()


def uncount_steps(trainer: L.Trainer, n: int) -> None:
    """Take back ``n`` counted optimizer steps (updates found dropped after the fact).

    Under manual optimization ``global_step`` is the optimizer-step progress of the epoch loop's
    manual-optimization loop; lowering its totals makes the loop run ``n`` more batches before
    ``max_steps``, as if the dropped updates had never been counted.
    """
    progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    for tracker in (progress.total, progress.current):
        tracker.ready = max(0, tracker.ready - n)
        tracker.completed = max(0, tracker.completed - n)


def ddp_wrap(strategy: Any, network: Any) -> Any:
    """``DDPStrategy._setup_model``: ``network`` in DistributedDataParallel with the strategy's
    device ids and DDP arguments (per-network DDP wraps G and D separately with it)."""
    return strategy._setup_model(network)


def attached_trainer(module: L.LightningModule) -> L.Trainer | None:
    """The module's trainer, or None outside ``fit`` (unit tests call modules directly).

    The public ``module.trainer`` raises when no trainer is attached; ``_trainer`` is None then.
    """
    return module._trainer


def logger_writes(trainer: L.Trainer | None) -> bool:
    """True on the batches whose logged scalars reach the loggers (``trainer.log_every_n_steps``).

    The logger connector's ``should_update_logs`` is the trainer's own decision; recomputing it
    from ``log_every_n_steps`` here would copy Lightning's rule and drift from it. Without a
    trainer (unit tests), every batch counts as logged.
    """
    if trainer is None:
        return True
    connector = getattr(trainer, "_logger_connector", None)
    return bool(getattr(connector, "should_update_logs", True))


def stop_after_this_batch(trainer: L.Trainer) -> None:
    """Stop as Lightning stops on SIGTERM: the loop finishes this batch, logs, then raises.

    Setting the signal connector's flag (what Lightning's own SIGTERM handler sets) makes the fit
    loop raise ``SIGTERMException`` at the next batch boundary on every rank.
    """
    trainer._signal_connector.received_sigterm = True


def next_logged_step(trainer: L.Trainer) -> int:
    """The step the next logged scalar is written at (the loggers' x axis).

    Lightning logs at ``epoch_loop._batches_that_stepped``, not at ``global_step`` (which here
    counts G steps only); a resumed run purges TensorBoard events from this step on.
    """
    return int(trainer.fit_loop.epoch_loop._batches_that_stepped)


_LIGHTNING_DISPATCH = lightning_call._call_callback_hooks


@cache
def _defines_hook(callback_type: type, hook_name: str) -> bool:
    """False when ``callback_type`` inherits ``L.Callback``'s empty ``hook_name``."""
    return getattr(callback_type, hook_name, None) is not getattr(L.Callback, hook_name, None)


def _lean_callback_hooks(
    trainer: L.Trainer,
    hook_name: str,
    *args: Any,
    monitoring_callbacks: bool | None = None,
    **kwargs: Any,
) -> None:
    """``lightning.pytorch.trainer.call._call_callback_hooks`` without the calls that do nothing.

    Lightning calls every hook of every callback, each inside a profiler context whose name it
    formats first (a ModelCheckpoint's ``state_key`` alone costs ~2.6 us): ~29 us per hook name
    for the default callbacks, ~8 hook names per batch, where most callbacks define none of them.
    This calls only the callbacks whose class (or instance) defines the hook, in the same order
    and with the same arguments; a real profiler gets Lightning's own dispatch, with its records.
    """
    if type(trainer.profiler) is not PassThroughProfiler:
        _LIGHTNING_DISPATCH(
            trainer, hook_name, *args, monitoring_callbacks=monitoring_callbacks, **kwargs
        )
        return
    pl_module = trainer.lightning_module
    if pl_module:
        previous_fx_name, pl_module._current_fx_name = pl_module._current_fx_name, hook_name
    for callback in trainer.callbacks:
        if monitoring_callbacks is not None and monitoring_callbacks != isinstance(
            callback, (EarlyStopping, Checkpoint)
        ):
            continue
        if not (
            _defines_hook(type(callback), hook_name)
            or hook_name in getattr(callback, "__dict__", ())
        ):
            continue
        fn = getattr(callback, hook_name)
        if callable(fn):
            fn(trainer, pl_module, *args, **kwargs)
    if pl_module:
        pl_module._current_fx_name = previous_fx_name


@contextmanager
def lean_callback_hooks() -> Iterator[None]:
    """Within this block, Trainers dispatch callback hooks with :func:`_lean_callback_hooks`.

    Lightning's loops look the dispatcher up in ``lightning.pytorch.trainer.call`` at every call,
    so replacing it there for the length of ``trainer.fit`` reaches every hook of the run.
    """
    previous = lightning_call._call_callback_hooks
    lightning_call._call_callback_hooks = _lean_callback_hooks
    try:
        yield
    finally:
        lightning_call._call_callback_hooks = previous


def fit_as_gan_train(
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    ckpt_path: str | None = None,
) -> None:
    """``trainer.fit`` with the lean hook dispatch, as ``gan-train`` runs it (benchmarks use this
    too, so that they measure the same step)."""
    with lean_callback_hooks():
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
