"""DDP with one DistributedDataParallel wrapper per network: trainer=ddp_gan.

Lightning's DDPStrategy wraps the whole LightningModule in one DDP. A GAN step runs two
backwards, each reaching only D's or only G's parameters (the other network is frozen by the
optimizer toggle), so that single wrapper needs ``find_unused_parameters=True``: a traversal of
the autograd graph after every forward, and every backward waits on, and all-reduces, the
buckets of both networks. Here G and D each get their own wrapper and the LightningModule stays
unwrapped: the D update runs D through its wrapper (G makes fakes under no_grad, unwrapped),
the G update runs G through its wrapper and the frozen D unwrapped, so each backward all-reduces
exactly the network it trains and no search for unused parameters is needed. Parameter names,
state_dicts and checkpoints are unchanged (the wrappers are not submodules).

Buffers (BatchNorm running statistics) are not broadcast before each forward by default
(``broadcast_buffers=False``): Lightning's single wrapper under manual optimization does not
broadcast them during training either (no ``_broadcast_coalesced`` call in a cProfile of 100
steps), and with three wrapped forwards per step the broadcast would be one more wait for the
slowest rank per step. ``trainer.strategy.broadcast_buffers=true`` restores DDP's default.

The LightningModule opts in with ``wrap_networks(wrap)`` (GANModule does); see Lightning issues
#20328 / #20866 and PR #20936 for the upstream discussion of multi-model DDP.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy

from gan_lab.errors import ConfigError
from gan_lab.lightning_internals import ddp_wrap


def broadcast_module_state(module: torch.nn.Module, src: int = 0) -> None:
    """Every parameter and buffer from rank ``src`` (EMA, fixed noise too): one start for all ranks."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    with torch.no_grad():
        for tensor in module.state_dict(keep_vars=True).values():
            dist.broadcast(tensor.data, src)


class PerNetworkDDPStrategy(DDPStrategy):
    """DDPStrategy whose ``configure_ddp`` wraps the module's networks, not the module."""

    strategy_name = "ddp_gan"

    def __init__(
        self,
        *args: Any,
        find_unused_parameters: bool = False,
        broadcast_buffers: bool = False,
        **kwargs: Any,
    ) -> None:
        if find_unused_parameters:
            raise ConfigError(
                "trainer.strategy.find_unused_parameters",
                True,
                "trainer=ddp_gan gives each backward its own network's wrapper; nothing is unused",
            )
        super().__init__(*args, broadcast_buffers=broadcast_buffers, **kwargs)

    def configure_ddp(self) -> None:
        module = self.model
        if not isinstance(module, L.LightningModule) or not hasattr(module, "wrap_networks"):
            raise ConfigError(
                "trainer.strategy",
                type(self).__name__,
                "needs a LightningModule with wrap_networks() (GANModule); use trainer=ddp otherwise",
            )
        broadcast_module_state(module)  # DDP syncs only what it wraps; the EMA must match too
        module.wrap_networks(lambda network: ddp_wrap(self, network))

    def teardown(self) -> None:
        module = self.lightning_module
        if module is not None and hasattr(module, "wrap_networks"):
            module.wrap_networks(None)
        super().teardown()
