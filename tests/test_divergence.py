"""Divergence guard: a NaN injected into one batch is skipped, stops the run, or rolls it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

import gan_lab.train as train_module
from gan_lab.callbacks.divergence_guard import (
    DivergenceGuard,
    _Batch,
    gradients_finite,
    nonfinite_gradients,
    skips_on_device,
)
from gan_lab.checkpoint_io import read_checkpoint
from gan_lab.errors import ConfigError
from gan_lab.training.recovery import TrainingStopped
from tests.conftest import TINY_MLP_GAN, compose_train_config

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

TINY = (
    *TINY_MLP_GAN,
    "~callbacks.health_monitor",
    "trainer.max_steps=8",
    "callbacks.model_checkpoint.every_n_train_steps=2",
)


class NaNInBatch(L.Callback):
    """Puts a NaN into the real images of one batch (0-based) and records what the step did."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.before: dict[str, torch.Tensor] = {}
        self.after: dict[str, torch.Tensor] = {}
        self.d_optimizer_before: dict[str, torch.Tensor] = {}
        self.d_optimizer_after: dict[str, torch.Tensor] = {}
        self.trainer: L.Trainer | None = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.trainer = trainer
        if trainer.fit_loop.epoch_loop.batch_progress.total.ready - 1 == self.batch:
            batch[0][0, 0, 0, 0] = float("nan")
            self.before = {k: v.clone() for k, v in pl_module.state_dict().items()}
            self.d_optimizer_before = optimizer_tensors(trainer.optimizers[1])

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.total.ready - 1 == self.batch:
            self.after = {k: v.clone() for k, v in pl_module.state_dict().items()}
            self.d_optimizer_after = optimizer_tensors(trainer.optimizers[1])

    @property
    def guard(self) -> DivergenceGuard:
        assert self.trainer is not None
        return next(c for c in self.trainer.callbacks if isinstance(c, DivergenceGuard))


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Every state tensor (moments, step counts) of an optimizer, cloned, by parameter and name."""
    return {
        f"{index}.{name}": value.clone()
        for index, state in optimizer.state_dict()["state"].items()
        for name, value in state.items()
    }


def train_with_nan(
    run_dir: Path, policy: str, batch: int, extra: tuple[str, ...] = ()
) -> NaNInBatch:
    cfg = compose_train_config(
        [*TINY, f"callbacks.divergence_guard.policy={policy}", *extra], run_dir
    )
    injector = NaNInBatch(batch)
    original = train_module.instantiate_callbacks
    train_module.instantiate_callbacks = lambda c: [*original(c), injector]
    try:
        train_module.train(cfg)
    finally:
        train_module.instantiate_callbacks = original
    return injector


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))


def test_skip_policy_drops_the_bad_update_counts_it_and_finishes(tmp_path: Path) -> None:
    injector = train_with_nan(tmp_path / "run", "skip", batch=3)
    # D's update with the NaN batch changed nothing; G still trained in that batch.
    assert same(injector.before, injector.after, "discriminator.")
    assert injector.d_optimizer_before and same(
        injector.d_optimizer_before, injector.d_optimizer_after, ""
    )
    assert not same(injector.before, injector.after, "generator.")
    assert (injector.guard.nonfinite_steps, injector.guard.skipped_steps) == (1, 1)
    final = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert final["global_step"] == 8
    assert all(
        torch.isfinite(t).all() for t in final["state_dict"].values() if t.is_floating_point()
    )
    assert final["callbacks"]["DivergenceGuard"]["skipped_steps"] == 1


def test_stop_policy_ends_the_run_with_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(TrainingStopped) as err:
        train_with_nan(tmp_path / "run", "stop", batch=3)
    message = str(err.value)
    assert "\n" not in message
    assert "non-finite gradient of D" in message and "generator step 3" in message
    assert "policy=stop" in message


def test_rollback_policy_reloads_the_last_good_checkpoint_and_halves_the_lrs(
    tmp_path: Path,
) -> None:
    injector = train_with_nan(tmp_path / "run", "rollback", batch=5)
    # after batch 5 the weights are those of the newest checkpoint before it (generator step 4)
    rolled_back_to = read_checkpoint(tmp_path / "run" / "checkpoints" / "step_0000004.ckpt")
    assert same(rolled_back_to["state_dict"], injector.after, "")
    assert injector.guard.rollbacks == 1
    final = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    lrs = [group["lr"] for state in final["optimizer_states"] for group in state["param_groups"]]
    assert lrs == pytest.approx([1e-4, 1e-4])  # 2e-4 x 0.5
    assert final["global_step"] == 8


def test_a_nan_gradient_is_dropped_on_the_device_and_read_only_on_logged_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fused Adam skips the bad update itself (found_inf): weights, moments and step counts of D
    stay as they were, though the host learns of it only on the next logged batch."""
    reads: list[int] = []
    judge = DivergenceGuard._judge_pending

    def counting_judge(self: DivergenceGuard, *args: Any) -> None:
        if self._pending:
            reads.append(len(self._pending))
        judge(self, *args)

    monkeypatch.setattr(DivergenceGuard, "_judge_pending", counting_judge)
    injector = train_with_nan(
        tmp_path / "run",
        "skip",
        batch=2,
        extra=(
            "trainer.log_every_n_steps=5",
            "callbacks.model_checkpoint.every_n_train_steps=100",
        ),
    )
    assert same(injector.before, injector.after, "discriminator.")
    assert same(injector.d_optimizer_before, injector.d_optimizer_after, "")
    assert any(k.endswith(".step") for k in injector.d_optimizer_before)
    assert not same(injector.before, injector.after, "generator.")
    # batches 1-5 read at the logged batch 5, 6-8 at the end of training (saving last.ckpt)
    assert reads == [5, 3]
    assert (injector.guard.nonfinite_steps, injector.guard.skipped_steps) == (1, 1)
    final = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert final["callbacks"]["DivergenceGuard"]["skipped_steps"] == 1


def test_one_deferred_read_rolls_back_once_however_many_of_its_batches_were_bad(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guard = DivergenceGuard(policy="rollback")
    rollbacks: list[str] = []
    monkeypatch.setattr(guard, "_roll_back", lambda trainer, module, where: rollbacks.append(where))
    bad_d = torch.tensor([0.0, 1.0, 0.7, 0.6])  # flags of G's, D's gradient; loss/d, loss/g
    good = torch.tensor([0.0, 0.0, 0.7, 0.6])
    nan_loss = torch.tensor([0.0, 0.0, float("nan"), 0.6])
    guard._pending = [_Batch(good, "b1"), _Batch(bad_d, "b2"), _Batch(nan_loss, "b3")]
    guard._judge_pending(None, None)
    assert rollbacks == ["b2"]  # b3 ran before the rollback that b2 triggers
    assert (guard.nonfinite_steps, guard.skipped_steps) == (2, 1)
    assert guard._pending == []


def test_optimizers_that_cannot_skip_on_the_device_are_checked_on_the_host() -> None:
    fused = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], fused=True)
    looped = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], foreach=False)
    assert skips_on_device(fused) and not skips_on_device(looped)
    looped.param_groups[0]["params"][0].grad = torch.tensor([1.0, float("inf"), 0.0])
    assert float(nonfinite_gradients(looped)) == 1.0 and not gradients_finite(looped)


def test_unknown_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"callbacks\.divergence_guard\.policy='ignore'"):
        DivergenceGuard(policy="ignore")
