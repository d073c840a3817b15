"""Progress in G steps, D updates and kimg: the bar, the checkpoint and the console agree."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from omegaconf import DictConfig

from gan_lab.callbacks.progress import GANProgressBar
from gan_lab.errors import ConfigError
from gan_lab.train import train
from tests.conftest import TINY_MLP_GAN

N_CRITIC, G_STEPS, BATCH = 5, 5, 16  # TINY_MLP_GAN's global batch is 16


class BarReader(L.Callback):
    """Reads what the bar shows after each batch (it runs after the bar: later in the list)."""

    def __init__(self, bar: GANProgressBar) -> None:
        self.bar, self.seen = bar, []

    def on_train_batch_end(self, *args: object) -> None:
        assert self.bar.progress is not None
        task = self.bar.progress.tasks[0]
        self.seen.append((task.completed, task.total, task.fields["d_updates"]))


def test_the_bar_counts_generator_steps_against_max_steps_with_kimg(
    make_cfg: Callable[..., DictConfig], one_cpu_thread: None
) -> None:
    cfg = make_cfg(*TINY_MLP_GAN, f"model.n_critic={N_CRITIC}")
    bar = GANProgressBar(refresh_rate=1)
    reader = BarReader(bar)
    trainer = L.Trainer(
        max_steps=G_STEPS, callbacks=[bar, reader], logger=False, enable_checkpointing=False,
        enable_model_summary=False, accelerator="cpu", limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(hydra.utils.instantiate(cfg.model), hydra.utils.instantiate(cfg.data))

    batches = N_CRITIC * G_STEPS
    assert [s[0] for s in reader.seen] == [(i + 1) // N_CRITIC for i in range(batches)]
    assert {s[1] for s in reader.seen} == {G_STEPS}  # the total is max_steps, never batches
    assert [s[2] for s in reader.seen] == list(range(1, batches + 1))
    task = bar.progress.tasks[0]
    assert (task.completed, task.total) == (G_STEPS, G_STEPS)  # 5/5, not 25/?
    assert task.fields["kimg"] == pytest.approx(batches * BATCH / 1000)
    assert task.fields["img_per_s"] > 0
    assert "loss/d" in task.fields["scalars_text"] and not bar.progress.live.is_started


def test_checkpoint_and_console_say_g_steps_d_updates_and_kimg(
    make_cfg: Callable[..., DictConfig],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    one_cpu_thread: None,
) -> None:
    cfg = make_cfg(*TINY_MLP_GAN, f"model.n_critic={N_CRITIC}", f"trainer.max_steps={G_STEPS}")
    with caplog.at_level(logging.INFO):
        metrics = train(cfg)
    images = N_CRITIC * G_STEPS * BATCH
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["progress"] == {
        "g_step": G_STEPS,
        "d_updates": N_CRITIC * G_STEPS,
        "images_shown": images,
        "kimg": images / 1000,
    }
    assert (metrics["g_step"], metrics["d_updates"]) == (G_STEPS, N_CRITIC * G_STEPS)
    assert metrics["kimg"] == pytest.approx(images / 1000)
    assert metrics["progress/kimg"] == pytest.approx(images / 1000)  # the logged scalar, too
    described = f"G step {G_STEPS}, {N_CRITIC * G_STEPS} D updates, {images / 1000:.1f} kimg"
    assert f"last.ckpt ({described})" in caplog.text  # the save line
    assert f"finished: {described}" in caplog.text


def test_a_bad_refresh_rate_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"callbacks.progress_bar.refresh_rate=0 is invalid"):
        GANProgressBar(refresh_rate=0)
