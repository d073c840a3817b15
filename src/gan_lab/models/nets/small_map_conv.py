"""4x4 stride-2 convolutions whose weight gradient on a CPU is one matrix product.

At the small end of a DCGAN (G's layer from 4x4 to 8x8, D's from 8x8 to 4x4) each weight's
gradient sums over only batch x 16 positions, and oneDNN's backward-weights kernel runs far below
the matmul rate there: on an Intel Xeon with AMX, bf16, batch 128, 120 GFLOP/s for both such
layers of DCGAN-64, a twelfth of the bf16 matmul rate (docs/benchmarks.md, per-layer table). Written as patches x gradient, the same
sum is one bf16 matmul on the patches (a strided view of the padded input, copied once).

The forward and the input gradient stay the native convolutions. The backward is built from
differentiable ops, so gradient penalties (R1/R2, which differentiate D's input gradient) see the
same second derivatives as with the native layer. The layers keep ``nn.Conv2d`` /
``nn.ConvTranspose2d``'s parameters, initialisation and spectral norm, and fall back to the
native path where the shortcut does not apply (GPUs, other shapes, ``torch.compile`` tracing).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Largest spatial extent (per image) of the side that the weight gradient sums over for which
# the matmul form is used: oneDNN's slow case is the 4x4 side; from 8x8 on its weight gradients
# run 300-700 GFLOP/s (docs/benchmarks.md, per-layer table).
MAX_REDUCED_POSITIONS = 16


def _patches(nhwc: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/2 * W/2, 4 * 4 * C): the 4x4 windows, stride 2, of the 1-padded map."""
    padded = F.pad(nhwc, (0, 0, 1, 1, 1, 1))
    b, hp, wp, c = padded.shape
    ho, wo = (hp - 4) // 2 + 1, (wp - 4) // 2 + 1
    sb, sh, sw, sc = padded.stride()
    windows = padded.as_strided((b, ho, wo, 4, 4, c), (sb, 2 * sh, 2 * sw, sh, sw, sc))
    return windows.reshape(b * ho * wo, 16 * c)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous()


def _conv_weight_grad(x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """d(conv2d(x, w, stride 2, padding 1)) / dw for a 4x4 kernel: (out, in, 4, 4)."""
    out_ch, in_ch = grad_out.shape[1], x.shape[1]
    g = _nhwc(grad_out).reshape(-1, out_ch)
    return (g.t() @ _patches(_nhwc(x))).view(out_ch, 4, 4, in_ch).permute(0, 3, 1, 2)


def _conv_transpose_weight_grad(x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """d(conv_transpose2d(x, w, stride 2, padding 1)) / dw for a 4x4 kernel: (in, out, 4, 4)."""
    in_ch, out_ch = x.shape[1], grad_out.shape[1]
    flat = _nhwc(x).reshape(-1, in_ch)
    return (flat.t() @ _patches(_nhwc(grad_out))).view(in_ch, 4, 4, out_ch).permute(0, 3, 1, 2)


def _stride2_function(name: str, conv: Any, input_grad: Any, weight_grad: Any) -> type:
    """An autograd Function: ``conv`` forward; ``input_grad`` (its adjoint) and ``weight_grad`` back."""

    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return conv(x, weight, bias, 2, 1)

    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        gx = input_grad(grad_out, weight, None, 2, 1) if ctx.needs_input_grad[0] else None
        gw = weight_grad(x, grad_out) if ctx.needs_input_grad[1] else None
        gb = grad_out.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb

    methods = {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    return type(name, (torch.autograd.Function,), methods)


# their grad_fn names end in "Stride2Backward" (tests check which path ran)
_Conv4x4Stride2 = _stride2_function(
    "_Conv4x4Stride2", F.conv2d, F.conv_transpose2d, _conv_weight_grad
)
_ConvTranspose4x4Stride2 = _stride2_function(
    "_ConvTranspose4x4Stride2", F.conv_transpose2d, F.conv2d, _conv_transpose_weight_grad
)


def _autocast_inputs(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Cast as CPU autocast casts a convolution's operands (the Function runs with autocast off)."""
    if not torch.is_autocast_enabled("cpu"):
        return x, weight, bias
    dtype = torch.get_autocast_dtype("cpu")
    return x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype)


def _shape_fits(layer: nn.Conv2d | nn.ConvTranspose2d) -> bool:
    return (
        layer.kernel_size == (4, 4)
        and layer.stride == (2, 2)
        and layer.padding == (1, 1)
        and layer.dilation == (1, 1)
        and layer.groups == 1
        and layer.padding_mode == "zeros"
    )


def _use_matmul_grad(x: torch.Tensor, reduced_hw: tuple[int, int]) -> bool:
    return (
        x.device.type == "cpu"
        and x.dim() == 4
        # even sides: the native adjoint (no output_padding) gives back exactly the input's size
        and x.shape[-2] % 2 == 0
        and x.shape[-1] % 2 == 0
        and reduced_hw[0] * reduced_hw[1] <= MAX_REDUCED_POSITIONS
        and not torch.compiler.is_compiling()
    )


class SmallMapConv2d(nn.Conv2d):
    """``nn.Conv2d``; 4x4 / stride 2 / padding 1 onto a map of <= 16 positions takes the matmul weight gradient on CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (_shape_fits(self) and _use_matmul_grad(x, (x.shape[-2] // 2, x.shape[-1] // 2))):
            return super().forward(x)
        operands = _autocast_inputs(x, self.weight, self.bias)
        with torch.autocast("cpu", enabled=False):
            return _Conv4x4Stride2.apply(*operands)


class SmallMapConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d``; 4x4 / stride 2 / padding 1 from a map of <= 16 positions takes the matmul weight gradient on CPU."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        fits = _shape_fits(self) and self.output_padding == (0, 0) and output_size is None
        # the weight gradient sums over the input's positions (the patches are cut from the
        # 2x larger output's gradient)
        if not (fits and _use_matmul_grad(x, (x.shape[-2], x.shape[-1]))):
            return super().forward(x, output_size)
        operands = _autocast_inputs(x, self.weight, self.bias)
        with torch.autocast("cpu", enabled=False):
            return _ConvTranspose4x4Stride2.apply(*operands)
