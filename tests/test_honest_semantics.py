"""Counters and promises that say what happened: skipped updates are no G steps; extending a
finished run continues it as documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

import gan_lab.train as train_module
from gan_lab.callbacks.divergence_guard import DivergenceGuard
from gan_lab.checkpoint_io import read_checkpoint
from tests.conftest import TINY_MLP_GAN, compose_train_config

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

TINY = (*TINY_MLP_GAN, "~callbacks.health_monitor", "trainer.deterministic=true")


class NaNGradientOfG(L.Callback):
    """Makes G's gradient non-finite in the given batches (0-based), through a tensor hook."""

    def __init__(self, batches: set[int]) -> None:
        self.batches, self.handle, self.trainer = batches, None, None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        self.trainer = trainer
        if trainer.fit_loop.epoch_loop.batch_progress.total.ready - 1 in self.batches:
            weight = next(pl_module.generator.parameters())
            self.handle = weight.register_hook(lambda g: g * float("nan"))

    def on_train_batch_end(self, *args: Any) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


def train_with(cfg: Any, extra: list[L.Callback]) -> L.Trainer:
    original = train_module.instantiate_callbacks
    train_module.instantiate_callbacks = lambda c: [*original(c), *extra]
    try:
        train_module.train(cfg)
    finally:
        train_module.instantiate_callbacks = original
    trainer = extra[0].trainer
    assert trainer is not None
    return trainer


def test_skipped_generator_updates_are_not_counted_as_generator_steps(tmp_path: Path) -> None:
    cfg = compose_train_config([*TINY, "trainer.max_steps=4"], tmp_path / "run")
    trainer = train_with(cfg, [NaNGradientOfG({1, 2})])
    guard = next(c for c in trainer.callbacks if isinstance(c, DivergenceGuard))
    assert guard.skipped_steps == 2
    assert trainer.global_step == 4  # four applied G updates ...
    assert trainer.fit_loop.epoch_loop.batch_progress.total.processed == 6  # ... in six batches
    adam_g = trainer.optimizers[0].state_dict()["state"]
    assert {float(s["step"]) for s in adam_g.values()} == {4.0}  # G's optimizer stepped 4 times
    saved = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 4


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]


def test_extending_a_finished_run_continues_it_in_a_new_epoch_as_documented(
    tmp_path: Path,
) -> None:
    """2 steps, finished; then ckpt_path=last with trainer.max_steps=4 (README "Resume").

    Exact up to the end of the first run; the extension then starts a new epoch (Lightning
    counts the epoch in which max_steps was reached as complete), so it sees another data
    order than the straight run and is not bit-identical to it. A signal stop is.
    """
    every_step = "callbacks.model_checkpoint.every_n_train_steps=1"
    straight = tmp_path / "straight"
    train_module.train(compose_train_config([*TINY, "trainer.max_steps=4", every_step], straight))
    extended = tmp_path / "extended"
    train_module.train(compose_train_config([*TINY, "trainer.max_steps=2"], extended))
    first = read_checkpoint(extended / "checkpoints" / "last.ckpt")
    at_two = read_checkpoint(straight / "checkpoints" / "step_0000002.ckpt")
    assert all(
        torch.equal(first["state_dict"][k], at_two["state_dict"][k]) for k in at_two["state_dict"]
    )
    assert (
        first["loops"]["fit_loop"]["epoch_progress"]["total"]["completed"] == 1
    )  # cut short, yet complete

    train_module.train(
        compose_train_config([*TINY, "trainer.max_steps=4", "ckpt_path=last"], extended)
    )
    done = read_checkpoint(extended / "checkpoints" / "last.ckpt")
    assert done["global_step"] == 4 and done["gan_lab"]["d_updates"] == 4
    assert done["loops"]["fit_loop"]["epoch_progress"]["total"]["completed"] == 2  # a new epoch
    a, b = final_weights(straight), done["state_dict"]
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("generator."))
