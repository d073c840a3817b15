"""Exact resume: N steps straight == N/2 steps, interrupted, resumed, N/2 more (bit for bit)."""

from __future__ import annotations

import os
import signal
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import gan_lab.train as train_module
from gan_lab.checkpoint_io import read_checkpoint
from tests.conftest import compose_train_config

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

# Tiny MLP GAN on a small synthetic set: 256 images / batch 32 = 8 batches per epoch, with
# horizontal flips (the global RNG matters), EMA on and a linear LR schedule (schedulers matter).
TINY = (
    "data/source=synthetic",
    "data.channels=1",
    "data.image_size=16",
    "data.source.num_samples=256",
    "data.batch_size=32",
    "data.hflip=true",
    "model.generator.latent_dim=16",
    "model.generator.width=32",
    "model.discriminator.width=32",
    "model.ema_decay=0.9",
    "model.ema_start_step=0",
    "model.ema_rampup=0.5",
    "model.lr_schedule=linear",
    "trainer.deterministic=true",
    "~callbacks.sample_grid",
    "seed=7",
)


class SignalAtStep(L.Callback):
    """Sends this process ``signum`` after generator step ``step``: an in-process pre-emption."""

    def __init__(self, step: int, signum: int = signal.SIGUSR1) -> None:
        self.step, self.signum, self.sent = step, signum, False

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)


def run_training(
    run_dir: Path, steps: int, n_critic: int, *extra: str, interrupt_at: int | None = None
) -> None:
    overrides = [*TINY, f"trainer.max_steps={steps}", f"model.n_critic={n_critic}", *extra]
    overrides.append(f"callbacks.model_checkpoint.every_n_train_steps={steps}")
    cfg = compose_train_config(overrides, run_dir)
    if interrupt_at is None:
        train_module.train(cfg)
        return
    original: Callable[..., list] = train_module.instantiate_callbacks
    train_module.instantiate_callbacks = lambda c: [*original(c), SignalAtStep(interrupt_at)]
    try:
        with pytest.raises(SystemExit):
            train_module.train(cfg)
    finally:
        train_module.instantiate_callbacks = original


def assert_identical(a: Any, b: Any, where: str = "checkpoint") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {set(a) ^ set(b)}"
        for key in a:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


@pytest.mark.parametrize(
    ("n_critic", "steps"), [(1, 12), (5, 6), pytest.param(1, 16, marks=pytest.mark.slow)]
)
def test_interrupted_and_resumed_run_is_bit_identical_to_a_straight_run(
    tmp_path: Path, n_critic: int, steps: int
) -> None:
    # (1, 12) and (5, 6) stop mid-epoch; (1, 16) stops exactly at an epoch boundary.
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_training(straight, steps, n_critic)
    run_training(resumed, steps, n_critic, interrupt_at=steps // 2)
    half = read_checkpoint(resumed / "checkpoints" / "last.ckpt")
    assert half["global_step"] == steps // 2
    # TensorBoard orders event files by name: <unix second>.<host>.<pid>.<counter>. Two runs of one
    # process within the same second are ordered by the counter as text ("10" < "9"), which a real
    # resume (a new process, seconds later) never sees; wait for the next second like one.
    time.sleep(1.05)
    run_training(resumed, steps, n_critic, "ckpt_path=last")

    a = read_checkpoint(straight / "checkpoints" / "last.ckpt")
    b = read_checkpoint(resumed / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] == steps
    assert any(key.startswith("ema.") for key in a["state_dict"])
    for key in ("state_dict", "optimizer_states", "lr_schedulers", "gan_lab", "global_step"):
        assert_identical(a[key], b[key], key)
    assert_identical(a["callbacks"]["ResumeState"], b["callbacks"]["ResumeState"], "rng")

    # TensorBoard: the resumed curves are the straight curves, without gaps or repeated steps.
    # (x-axis = batches; loss/g is compared at the batches that made a G step: between them
    # Lightning re-logs its last value, and a resumed process has no "last value" to repeat.)
    assert scalars(resumed, "loss/d") == scalars(straight, "loss/d")
    assert [s for s, _ in scalars(resumed, "loss/d")] == list(range(steps * n_critic))
    g_points = [(s, v) for s, v in scalars(straight, "loss/g") if (s + 1) % n_critic == 0]
    assert len(g_points) == steps
    assert [p for p in scalars(resumed, "loss/g") if (p[0] + 1) % n_critic == 0] == g_points


def test_points_logged_after_the_last_checkpoint_of_a_killed_run_are_replaced(
    tmp_path: Path,
) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger

    from gan_lab.callbacks.resume_state import purge_tensorboard_after

    killed = TensorBoardLogger(save_dir=str(tmp_path), name=None, version="")
    for step in range(10):  # steps 7..9 were logged after the checkpoint at step 6
        killed.log_metrics({"loss/d": 1.0}, step=step)
    killed.experiment.flush()
    resumed = TensorBoardLogger(save_dir=str(tmp_path), name=None, version="")
    purge_tensorboard_after(resumed, 7)
    for step in range(7, 12):
        resumed.log_metrics({"loss/d": 2.0}, step=step)
    resumed.experiment.flush()

    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    curve = [(e.step, e.value) for e in events.Scalars("loss/d")]
    assert curve == [(s, 1.0) for s in range(7)] + [(s, 2.0) for s in range(7, 12)]


def test_resume_is_bit_identical_with_ada_and_lecam(tmp_path: Path) -> None:
    """ADA's p (and its half-finished interval) and LeCam's anchors continue exactly."""
    extra = (
        "model/augment=ada",
        "model.augment.interval=4",  # the interruption at D step 6 falls inside an interval
        "model.augment.speed_kimg=1",
        "model.augment.initial_p=0.5",
        "model/regularizer=lecam",
    )
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_training(straight, 12, 1, *extra)
    run_training(resumed, 12, 1, *extra, interrupt_at=6)
    half = read_checkpoint(resumed / "checkpoints" / "last.ckpt")["state_dict"]
    assert int(half["augment.observed"]) == 6 and float(half["augment.count"]) == 2 * 32
    time.sleep(1.05)  # see the test above
    run_training(resumed, 12, 1, *extra, "ckpt_path=last")

    a = read_checkpoint(straight / "checkpoints" / "last.ckpt")
    b = read_checkpoint(resumed / "checkpoints" / "last.ckpt")
    for key in ("state_dict", "optimizer_states", "gan_lab", "global_step"):
        assert_identical(a[key], b[key], key)
    state = a["state_dict"]
    assert float(state["augment.p"]) != 0.5  # p moved: 3 updates of +-128 / 1000
    assert (
        float(state["regularizer.anchor_real"]) != 0.0 and int(state["regularizer.updates"]) == 12
    )
    assert scalars(resumed, "augment/p") == scalars(straight, "augment/p")


@pytest.mark.parametrize("key", ["current", "lightning"])
def test_a_resume_with_another_checkpoint_cadence_keeps_writing_last_ckpt(
    tmp_path: Path, key: str
) -> None:
    # The cadence was part of the checkpoint callback's state key (Lightning's default, "lightning"
    # here: checkpoints written before gan-lab keyed it itself), so a resume with another cadence
    # restored no state, warned, and its version counter wrote last-v1.ckpt beside last.ckpt.
    from gan_lab.callbacks.checkpointing import SafeCheckpoint
    from gan_lab.checkpoint_io import AtomicCheckpointIO

    run_dir = tmp_path / "run"
    run_training(run_dir, 4, 1)  # a checkpoint every 4 steps
    last = run_dir / "checkpoints" / "last.ckpt"
    if key == "lightning":
        blob = read_checkpoint(last)
        (ours,) = [k for k in blob["callbacks"] if k.startswith("SafeCheckpoint")]
        old = ModelCheckpoint._generate_state_key(  # what ModelCheckpoint.state_key gave
            SafeCheckpoint(every_n_train_steps=4), monitor=None, mode="min",
            every_n_train_steps=4, every_n_epochs=0, train_time_interval=None,
        )  # fmt: skip
        blob["callbacks"][old] = blob["callbacks"].pop(ours)
        AtomicCheckpointIO().save_checkpoint(blob, last)
    time.sleep(1.05)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # a checkpoint every 10 steps: the periodic save and last.ckpt both at step 10
        run_training(run_dir, 10, 1, "ckpt_path=last")
    names = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))
    assert names == ["last.ckpt", "step_0000004.ckpt", "step_0000010.ckpt"]
    assert read_checkpoint(last)["global_step"] == 10
    # the callback's state came back
    state = next(v for k, v in read_checkpoint(last)["callbacks"].items() if "SafeCheckpoint" in k)
    assert Path(state["last_model_path"]) == last
    # and no "add the following callbacks" warning (Lightning gives it, before any callback hook,
    # for a key that no callback claims: the old key still gets it once)
    unclaimed = [w for w in caught if "callbacks used to create the checkpoint" in str(w.message)]
    assert len(unclaimed) == (key == "lightning")


def test_an_old_checkpoint_key_is_adopted_only_by_the_checkpointer_of_its_monitor() -> None:
    # A run with a periodic and a monitored SafeCheckpoint wrote two Lightning-format keys: each
    # checkpointer takes the state of its own monitor and mode, whatever its cadence is now.
    from gan_lab.callbacks.checkpointing import SafeCheckpoint

    def lightning_key(monitor: str | None, mode: str, every: int) -> str:
        return ModelCheckpoint._generate_state_key(
            SafeCheckpoint(), monitor=monitor, mode=mode,
            every_n_train_steps=every, every_n_epochs=0, train_time_interval=None,
        )  # fmt: skip

    periodic = SafeCheckpoint(every_n_train_steps=10)
    best = SafeCheckpoint(monitor="metrics/fid", mode="min", every_n_train_steps=0)
    blob: dict[str, Any] = {
        "callbacks": {
            lightning_key(None, "min", 4): {"last_model_path": "last"},
            lightning_key("metrics/fid", "min", 0): {"best_model_path": "best"},
            "SafeCheckpoint{not a dict": {},
        }
    }
    for callback in (periodic, best):
        callback.on_load_checkpoint(None, None, blob)  # type: ignore[arg-type]
    assert blob["callbacks"][periodic.state_key] == {"last_model_path": "last"}
    assert blob["callbacks"][best.state_key] == {"best_model_path": "best"}
    assert periodic.state_key != best.state_key
