"""Speed options (memory layout, compilation) never change the maths."""

from __future__ import annotations

from functools import partial

import hydra
import lightning as L
import pytest
import torch

from gan_lab.errors import ConfigError
from gan_lab.models.gan_module import GANModule
from gan_lab.models.nets.dcgan import DCGANDiscriminator, DCGANGenerator


def _module(channels_last: bool) -> GANModule:
    torch.manual_seed(0)
    g, d = DCGANGenerator(16, 16, 3, width=8), DCGANDiscriminator(16, 3, width=8)
    adam = partial(torch.optim.Adam, lr=2e-4, fused=True)
    return GANModule(g, d, adam, adam, channels_last=channels_last)


def test_channels_last_stores_conv_weights_nhwc_in_g_d_and_ema_with_the_same_outputs() -> None:
    plain, nhwc = _module(False), _module(True)
    for net in (nhwc.generator, nhwc.discriminator, nhwc.ema.module):
        conv_weights = [p for p in net.parameters() if p.ndim == 4]
        assert conv_weights and all(
            p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights
        )
    assert plain.generator.state_dict().keys() == nhwc.generator.state_dict().keys()
    z = torch.randn(4, 16)
    fake_plain, fake_nhwc = plain.generator(z), nhwc.generator(z)
    torch.testing.assert_close(fake_nhwc, fake_plain, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        nhwc.discriminator(fake_nhwc), plain.discriminator(fake_plain), atol=1e-5, rtol=1e-4
    )


def _train_tiny(make_cfg, compile_step: bool, steps: int) -> GANModule:
    cfg = make_cfg(
        "data/source=synthetic",
        "data.source.num_samples=64",
        "data.batch_size=16",
        "data.image_size=8",
        "data.channels=1",
        "model.generator.latent_dim=8",
        "model.generator.width=16",
        "model.discriminator.width=16",
        "model.n_critic=2",
        "model.ema_decay=0.5",
        "model.ema_start_step=0",
        "model/regularizer=r1",
        "model.regularizer.r1_interval=1",
        f"model.compile_step={str(compile_step).lower()}",
    )
    L.seed_everything(0, verbose=False)
    # SGD: an update proportional to the gradient. Adam would turn the float noise in the
    # gradients of biases that a BatchNorm cancels (exactly 0 in exact arithmetic) into +-lr steps.
    sgd = partial(torch.optim.SGD, lr=0.05)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model, optimizer_g=sgd, optimizer_d=sgd)
    L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(model, datamodule=datamodule)
    return model


@pytest.mark.slow  # ~1-2 min: inductor compiles four graphs (D and G, forward and backward)
@pytest.mark.usefixtures("one_cpu_thread")
def test_compiled_step_trains_the_same_weights_as_eager(make_cfg) -> None:
    """n_critic 2 (D updates 1-4 around G updates 1-2), EMA, R1 (its double backward stays eager)."""
    eager, compiled = (_train_tiny(make_cfg, c, steps=2) for c in (False, True))
    assert compiled._step_functions is not None
    assert compiled._step_functions[0] is not compiled._d_forward  # really compiled
    assert compiled.d_updates == eager.d_updates == 4
    eager_state, compiled_state = eager.state_dict(), compiled.state_dict()
    assert eager_state.keys() == compiled_state.keys()
    moved = False
    for key, value in eager_state.items():
        torch.testing.assert_close(compiled_state[key], value, atol=1e-5, rtol=1e-4, msg=key)
        moved |= key.startswith("ema.") and value.is_floating_point()
    assert moved


def test_compile_step_and_compile_networks_are_one_choice() -> None:
    g, d = DCGANGenerator(16, 16, 3, width=8), DCGANDiscriminator(16, 3, width=8)
    adam = partial(torch.optim.Adam, lr=2e-4)
    with pytest.raises(ConfigError, match=r"model\.compile_networks=True.*compile_step"):
        GANModule(g, d, adam, adam, compile_networks=True, compile_step=True)
