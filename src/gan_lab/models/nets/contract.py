"""The network contract: what the training step, the samplers and the zoo tests rely on.

Any generator / discriminator that satisfies these Protocols plugs into ``GANModule`` through its
YAML in ``configs/model/{generator,discriminator}/``. ``supports`` is asked of the class (no
weights built), so the zoo tests learn which image sizes a network can be trained at from the
network itself. Networks stay plain PyTorch: a bad argument raises :class:`NetworkArgumentError`
naming the constructor's own argument; the entry point maps it to the config key the user set.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor


class NetworkArgumentError(ValueError):
    """A constructor argument that cannot build this network, with what would."""

    def __init__(self, argument: str, value: object, fix: str) -> None:
        self.argument, self.value, self.fix = argument, value, fix
        super().__init__(f"{argument}={value!r} is invalid: {fix}")


@runtime_checkable
class Generator(Protocol):
    """``(z: (N, latent_dim), y: (N,) labels or None) -> images (N, C, H, W)`` in [-1, 1]."""

    latent_dim: int
    num_classes: int  # 0: unconditional, y is ignored

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor: ...

    @classmethod
    def supports(cls, image_size: int, channels: int) -> str | None:
        """None if the class can be built for these images, else the reason it cannot."""
        ...


@runtime_checkable
class Discriminator(Protocol):
    """``(images (N, C, H, W), y: (N,) labels or None) -> raw scores (N,)``: no sigmoid."""

    num_classes: int  # 0: unconditional, y is ignored

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor: ...

    @classmethod
    def supports(cls, image_size: int, channels: int) -> str | None:
        """None if the class can be built for these images, else the reason it cannot."""
        ...
