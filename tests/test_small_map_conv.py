"""The small-map convolutions: native forward, matmul weight gradient, the same derivatives."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gan_lab.models.nets.small_map_conv as small_map_conv
from gan_lab.models.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_lab.models.nets.small_map_conv import SmallMapConv2d, SmallMapConvTranspose2d

# (layer, its native twin, input side): the sides where the reduction runs over 4x4 positions
CASES = [
    (SmallMapConv2d, nn.Conv2d, 8),
    (SmallMapConvTranspose2d, nn.ConvTranspose2d, 4),
]


def _twins(cls: type, base: type, bias: bool, dtype: torch.dtype) -> tuple[nn.Module, nn.Module]:
    fast = cls(6, 5, 4, 2, 1, bias=bias).to(dtype)
    native = base(6, 5, 4, 2, 1, bias=bias).to(dtype)
    native.load_state_dict(fast.state_dict())
    return fast, native


def _penalised_grads(layer: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Gradients of out + ||d out / d x||^2 (an R1-style penalty: second derivatives)."""
    y = layer(torch.tanh(x))
    (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    loss = y.sum() + gx.square().sum()
    return list(torch.autograd.grad(loss, [x, *layer.parameters()]))


@pytest.mark.parametrize(("cls", "base", "side"), CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_small_map_layer_has_the_native_first_and_second_derivatives(
    cls: type, base: type, side: int, bias: bool
) -> None:
    torch.manual_seed(0)
    fast, native = _twins(cls, base, bias, torch.float64)
    x = torch.randn(3, 6, side, side, dtype=torch.float64, requires_grad=True)
    y = fast(x)
    assert "Stride2Backward" in type(y.grad_fn).__name__  # the matmul path ran
    assert torch.equal(y, native(x))  # the forward is the native one
    for got, want in zip(_penalised_grads(fast, x), _penalised_grads(native, x), strict=True):
        assert got.abs().sum() > 0
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("cls", "base", "side"), CASES)
def test_small_map_layer_under_bf16_autocast_matches_the_native_layer(
    cls: type, base: type, side: int
) -> None:
    """Operands cast as autocast casts a convolution's; fp32 parameters get fp32 gradients."""
    torch.manual_seed(0)
    fast, native = _twins(cls, base, True, torch.float32)
    x = torch.randn(16, 6, side, side).contiguous(memory_format=torch.channels_last)
    grads = []
    for layer in (fast, native):
        with torch.autocast("cpu", torch.bfloat16):
            y = layer(x)
        assert y.dtype == torch.bfloat16
        grads.append(torch.autograd.grad(y.float().square().sum(), list(layer.parameters())))
    for got, want in zip(*grads, strict=True):
        assert got.dtype == torch.float32
        assert (got - want).norm() <= 1e-2 * want.norm()


@pytest.mark.parametrize(("cls", "side"), [(SmallMapConv2d, 16), (SmallMapConvTranspose2d, 8)])
def test_small_map_layer_keeps_the_native_path_on_larger_maps(cls: type, side: int) -> None:
    layer = cls(6, 5, 4, 2, 1)
    y = layer(torch.randn(2, 6, side, side))
    assert "Stride2Backward" not in type(y.grad_fn).__name__


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_dcgan_gradients_equal_with_and_without_the_matmul_weight_gradient(
    spectral_norm: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole DCGAN-32 G -> D pass: every parameter's gradient as with native convolutions."""
    torch.manual_seed(0)
    g = DCGANGenerator(
        latent_dim=8, image_size=32, channels=3, width=8, spectral_norm=spectral_norm
    )
    d = DCGANDiscriminator(
        image_size=32, channels=3, width=8, batch_norm=False, spectral_norm=spectral_norm
    )
    g.double().eval()
    d.double().eval()
    z = torch.randn(4, 8, dtype=torch.float64)
    params = [*g.parameters(), *d.parameters()]

    def grads() -> list[torch.Tensor]:
        return list(torch.autograd.grad(d(g(z)).square().sum(), params))

    fast = grads()
    monkeypatch.setattr(small_map_conv, "MAX_REDUCED_POSITIONS", 0)
    native = grads()
    assert sum(p.abs().sum() for p in fast) > 0
    for got, want in zip(fast, native, strict=True):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)
