"""Memory layout and compilation: speed options that leave the maths unchanged.

channels_last (NHWC) lets oneDNN (CPU) and cuDNN (GPU) run convolutions without layout
conversions, which matters most under bf16. ``compile_networks`` compiles each network's
forward; ``compile_step`` compiles each update's whole forward (G, augmentation, D, loss) into
one graph whose backward AOTAutograd compiles too. Each compiled function always runs under the
same ``requires_grad`` pattern (D's update: G frozen; G's update: D frozen), so neither recompiles
when the optimizer toggle flips. Kept eager: the optimizer step (already one fused Adam kernel),
gradient penalties (double backward, which torch.compile does not support), the EMA update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gan_lab.errors import ConfigError


def to_channels_last(*modules: nn.Module | None) -> None:
    """Store every 4-D weight as NHWC (in place); 2-D weights (MLPs) are unaffected."""
    for module in modules:
        if module is not None:
            module.to(memory_format=torch.channels_last)


def compile_networks(*modules: nn.Module | None) -> None:
    """``torch.compile`` each module's forward in place; parameter names and state_dicts stay the same."""
    for module in modules:
        if module is not None:
            module.compile()


def check_compile_options(compile_networks: bool, compile_step: bool) -> None:
    if compile_networks and compile_step:
        raise ConfigError(
            "model.compile_networks",
            True,
            "model.compile_step=true already compiles G and D inside the step; set one of them",
        )


def step_functions(
    d_forward: Callable[..., Any],
    g_forward: Callable[..., Any],
    device: torch.device,
    compiled: bool,
) -> tuple[Callable[..., Any], ...]:
    """The two updates' forwards, ``torch.compile``d when asked; on CUDA with CUDA graphs.

    CUDA graphs (``reduce-overhead``) reuse their output buffers on the next replay, so outputs
    that outlive the call (losses kept for the logs, D's inputs for a penalty) are cloned.
    """
    functions = (d_forward, g_forward)
    if not compiled:
        return functions
    if device.type != "cuda":
        return tuple(torch.compile(f, dynamic=False) for f in functions)

    def keep_outputs(compiled: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            return torch.utils._pytree.tree_map(torch.clone, compiled(*args))

        return run

    return tuple(
        keep_outputs(torch.compile(f, mode="reduce-overhead", dynamic=False)) for f in functions
    )
