"""fp16 (16-mixed) gradients: clipping and logged norms mean unscaled gradients, and the routine
overflows of loss scaling are left to the GradScaler, not reported as divergence.

fp16 training multiplies the loss by the GradScaler's scale, so before ``optimizer.step()`` the
gradients are ~65536x too large; a clip at ``model.grad_clip_d`` must still bound the *true* norm.
fp16 autocast runs on CPU too, so the tests pass a scaler-carrying precision plugin to a CPU run.
"""

from __future__ import annotations

from functools import partial

import hydra
import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision

from gan_lab.callbacks.divergence_guard import DivergenceGuard

LR = 0.1
CLIP = 1e-3


def tiny_gan(make_cfg, sgd: bool = True) -> tuple[L.LightningModule, L.LightningDataModule]:
    cfg = make_cfg(
        "data/source=synthetic",
        "data.source.num_samples=64",
        "data.batch_size=16",
        "data.image_size=16",
        "data.channels=1",
        "model.generator.width=8",
        "model.discriminator.width=8",
        f"model.grad_clip_d={CLIP}",
        "model.ema_decay=null",
    )
    L.seed_everything(0, verbose=False)
    datamodule = hydra.utils.instantiate(cfg.data)
    optimizers = {"optimizer_g": partial(torch.optim.SGD, lr=LR)} if sgd else {}
    if sgd:
        optimizers["optimizer_d"] = partial(torch.optim.SGD, lr=LR)
    return hydra.utils.instantiate(cfg.model, **optimizers), datamodule


def fit(model, datamodule, max_steps: int, scaler=None, callbacks=()) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        log_every_n_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)] if scaler else [],
        callbacks=list(callbacks),
    )
    trainer.fit(model, datamodule=datamodule)
    return trainer


def one_d_step(make_cfg, fp16: bool) -> tuple[float, float]:
    """One D and G update with SGD; returns (size of D's update / lr, D's logged grad norm)."""
    model, datamodule = tiny_gan(make_cfg)
    before = torch.cat([p.detach().flatten().clone() for p in model.discriminator.parameters()])
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16) if fp16 else None
    trainer = fit(model, datamodule, 1, scaler)
    after = torch.cat([p.detach().flatten() for p in model.discriminator.parameters()])
    return float((after - before).norm() / LR), float(trainer.callback_metrics["grad_norm/d"])


def test_fp16_clips_and_reports_the_unscaled_gradient_norm(make_cfg) -> None:
    update_32, norm_32 = one_d_step(make_cfg, fp16=False)
    update_16, norm_16 = one_d_step(make_cfg, fp16=True)
    assert norm_32 > 10 * CLIP  # the clip is active in both runs
    assert update_32 == pytest.approx(CLIP, rel=1e-3)
    # scaled gradients clipped at the unscaled limit would move D by CLIP / 65536
    assert update_16 == pytest.approx(CLIP, rel=2e-2)
    assert norm_16 == pytest.approx(norm_32, rel=5e-2)


def test_fp16_overflow_is_left_to_the_grad_scaler_not_reported_as_divergence(make_cfg) -> None:
    """A scale of 2^40 overflows fp16 gradients for the first steps; the scaler skips those and
    halves its scale. The divergence guard with policy=stop must not end the run for it."""
    model, datamodule = tiny_gan(make_cfg, sgd=False)  # the config's fused Adam
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
    guard = DivergenceGuard(policy="stop")
    trainer = fit(model, datamodule, 6, scaler, callbacks=[guard])
    assert trainer.global_step == 6
    assert scaler.get_scale() < 2.0**40  # overflows happened and were skipped by the scaler
    assert guard.nonfinite_steps == 0
