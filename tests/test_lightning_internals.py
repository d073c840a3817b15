"""The private Lightning attributes gan-lab relies on exist and behave as used, on this Lightning.

Every one is touched in src/gan_lab/lightning_internals.py only; if a Lightning upgrade inside the
pinned range renames one, these tests say which.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.utilities.exceptions import SIGTERMException
from packaging.specifiers import SpecifierSet
from torch.utils.data import DataLoader, TensorDataset

from gan_lab import lightning_internals

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
BATCHES = 4
# no logger, checkpoints, progress bar or summary: only the loop under test
BARE_TRAINER = dict(
    logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
)


class RecordingProfiler(PassThroughProfiler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str]] = []

    def start(self, action_name: str) -> None:
        self.events.append(("start", action_name))

    def stop(self, action_name: str) -> None:
        self.events.append(("stop", action_name))


class TwoOptimizerSteps(L.LightningModule):
    """Manual optimization with two steps per batch, the second not counted (like gan-lab's D)."""

    def __init__(self, stop_at_batch: int | None = None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.a, self.b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
        self.stop_at_batch = stop_at_batch
        self.writes: list[bool] = []
        self.logged_steps: list[int] = []
        self.batches_run = 0

    def configure_optimizers(self):
        return [
            torch.optim.SGD(self.a.parameters(), 0.1),
            torch.optim.SGD(self.b.parameters(), 0.1),
        ]

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        self.logged_steps.append(lightning_internals.next_logged_step(self.trainer))

    def training_step(self, batch, batch_idx: int) -> None:
        (x,) = batch
        opt_a, opt_b = self.optimizers()
        self.writes.append(lightning_internals.logger_writes(self.trainer))
        for opt, net, counted in ((opt_a, self.a, True), (opt_b, self.b, False)):
            opt.zero_grad()
            self.manual_backward(net(x).pow(2).mean())
            if counted:
                opt.step()
            else:
                with lightning_internals.step_not_counted(opt, self.trainer):
                    opt.step()
        self.batches_run += 1

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if batch_idx == self.stop_at_batch:
            lightning_internals.stop_after_this_batch(self.trainer)


def _fit(module: TwoOptimizerSteps, profiler: PassThroughProfiler | None = None) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=BATCHES,
        log_every_n_steps=2,
        profiler=profiler,
        **BARE_TRAINER,
    )
    data = DataLoader(TensorDataset(torch.randn(BATCHES * 2, 2)), batch_size=2)
    trainer.fit(module, data)
    return trainer


def test_installed_lightning_is_inside_the_pinned_range() -> None:
    tomllib = pytest.importorskip("tomllib")
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (pin,) = [d for d in dependencies if re.match(r"lightning\b", d)]
    spec = SpecifierSet(pin.removeprefix("lightning").split(";")[0].strip())
    assert version("lightning") in spec, (version("lightning"), pin)


def test_the_private_attributes_exist() -> None:
    module = TwoOptimizerSteps()
    trainer = _fit(module)
    assert hasattr(trainer, "_logger_connector") and hasattr(trainer, "_signal_connector")
    assert hasattr(trainer._logger_connector, "should_update_logs")
    assert hasattr(trainer._signal_connector, "received_sigterm")
    assert isinstance(trainer.fit_loop.epoch_loop._batches_that_stepped, int)
    assert lightning_internals.attached_trainer(module) is trainer
    assert lightning_internals.attached_trainer(TwoOptimizerSteps()) is None
    optimizer = module.optimizers()[0]
    assert callable(optimizer._on_before_step) and callable(optimizer._on_after_step)


def test_an_uncounted_step_steps_but_does_not_advance_global_step() -> None:
    module, profiler = TwoOptimizerSteps(), RecordingProfiler()
    before = module.b.weight.detach().clone()
    trainer = _fit(module, profiler)
    assert trainer.global_step == BATCHES  # 2 * BATCHES optimizer steps, half of them counted
    assert not torch.equal(module.b.weight, before)  # the uncounted optimizer did step
    # the profiler still times every step, counted or not
    assert profiler.events.count(("start", "optimizer_step")) == 2 * BATCHES
    assert profiler.events.count(("stop", "optimizer_step")) == 2 * BATCHES


def test_uncount_steps_takes_counted_steps_back() -> None:
    trainer = _fit(TwoOptimizerSteps())
    lightning_internals.uncount_steps(trainer, 2)
    assert trainer.global_step == BATCHES - 2
    lightning_internals.uncount_steps(trainer, 10 * BATCHES)  # never below zero
    assert trainer.global_step == 0


def test_ddp_strategies_have_the_wrapper_per_network_ddp_uses() -> None:
    from lightning.pytorch.strategies import DDPStrategy

    assert callable(getattr(DDPStrategy, "_setup_model", None))


def test_logger_writes_follows_log_every_n_steps_and_logged_steps_count_batches() -> None:
    module = TwoOptimizerSteps()
    _fit(module)
    assert module.writes == [False, True, False, True]  # log_every_n_steps=2
    assert module.logged_steps == list(range(BATCHES))
    assert lightning_internals.logger_writes(None)


def test_stop_after_this_batch_finishes_the_batch_then_raises_sigterm() -> None:
    module = TwoOptimizerSteps(stop_at_batch=1)
    with pytest.raises(SIGTERMException):
        _fit(module)
    assert module.batches_run == 2


class HookRecorder(L.Callback):
    """Records every hook it defines, with the batch index where the hook has one."""

    def __init__(self, name: str, events: list[tuple[str, str, object]]) -> None:
        self.name, self.events = name, events

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.events.append((self.name, "setup", stage))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self.events.append((self.name, "on_train_batch_start", batch_idx))

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.events.append((self.name, "on_before_backward", round(float(loss.detach()), 6)))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.events.append((self.name, "on_before_optimizer_step", pl_module._current_fx_name))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.events.append((self.name, "on_train_batch_end", batch_idx))


class Silent(L.Callback):
    """Defines no hook: the lean dispatch never calls it."""


def _fit_with_callbacks(callbacks: list[L.Callback], profiler=None) -> None:
    torch.manual_seed(0)
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=1, limit_train_batches=BATCHES, callbacks=callbacks,
        profiler=profiler, **BARE_TRAINER,
    )  # fmt: skip
    trainer.fit(TwoOptimizerSteps(), DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2))


def test_lean_hooks_call_the_same_hooks_in_the_same_order_and_skip_empty_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lightning.pytorch.trainer import call

    def recorders(events: list) -> list[L.Callback]:
        late = L.Callback()  # a hook set on the instance, not the class, is still called
        late.on_train_end = lambda trainer, pl_module: events.append(("late", "on_train_end", 0))
        return [HookRecorder("a", events), Silent(), HookRecorder("b", events), late]

    lightning_events: list = []
    _fit_with_callbacks(recorders(lightning_events))
    original = call._call_callback_hooks
    lean_events: list = []
    silent_calls: list[str] = []
    monkeypatch.setattr(Silent, "__getattribute__", lambda self, name: (
        silent_calls.append(name) if name.startswith("on_") else None
    ) or object.__getattribute__(self, name))  # fmt: skip
    with lightning_internals.lean_callback_hooks():
        assert call._call_callback_hooks is not original
        _fit_with_callbacks(recorders(lean_events))
    assert call._call_callback_hooks is original  # restored
    assert lean_events == lightning_events
    assert ("b", "on_before_optimizer_step", "on_before_optimizer_step") in lean_events
    assert ("late", "on_train_end", 0) in lean_events
    assert len([e for e in lean_events if e[1] == "on_train_batch_end"]) == 2 * BATCHES
    assert silent_calls == []  # never asked for a hook it does not define


def test_lean_hooks_give_a_real_profiler_lightnings_dispatch_and_records() -> None:
    profiler = RecordingProfiler()
    events: list = []
    with lightning_internals.lean_callback_hooks():
        _fit_with_callbacks([HookRecorder("a", events)], profiler)
    started = {name for kind, name in profiler.events if kind == "start"}
    assert any(n.startswith("[Callback]") and n.endswith("on_train_batch_end") for n in started)
    assert len([e for e in events if e[1] == "on_train_batch_end"]) == BATCHES
