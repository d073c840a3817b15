"""Speed options change the memory layout, never the maths."""

from __future__ import annotations

from functools import partial

import torch

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
