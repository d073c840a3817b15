"""Gradient clipping and the logged gradient norms mean unscaled gradients under every precision.

fp16 training multiplies the loss by the GradScaler's scale, so before ``optimizer.step()`` the
gradients are ~65536x too large; a clip at ``model.grad_clip_d`` must still bound the *true* norm.
fp16 autocast runs on CPU too, so the test passes a scaler-carrying precision plugin to a CPU run.
"""

from __future__ import annotations

from functools import partial

import hydra
import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision

LR = 0.1
CLIP = 1e-3


def one_d_step(make_cfg, fp16: bool) -> tuple[float, float]:
    """One D and G update with SGD; returns (size of D's update / lr, D's logged grad norm)."""
    cfg = make_cfg(
        "data.source=synthetic",
        "data.synthetic_size=64",
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
    model = hydra.utils.instantiate(
        cfg.model,
        optimizer_g=partial(torch.optim.SGD, lr=LR),
        optimizer_d=partial(torch.optim.SGD, lr=LR),
    )
    before = torch.cat([p.detach().flatten().clone() for p in model.discriminator.parameters()])
    plugins = []
    if fp16:
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
        plugins = [MixedPrecision("16-mixed", "cpu", scaler=scaler)]
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        log_every_n_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=plugins,
    )
    trainer.fit(model, datamodule=datamodule)
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
