"""Memory layout and compilation of the networks: speed options that leave the maths unchanged.

channels_last (NHWC) lets oneDNN (CPU) and cuDNN (GPU) run convolutions without layout
conversions, which matters most under bf16. Compilation is applied to each network's forward,
never to the LightningModule: the GAN step toggles ``requires_grad`` between D and G updates,
which would recompile or break a compiled training step.
"""

from __future__ import annotations

import torch
from torch import nn


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
