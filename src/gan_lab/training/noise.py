"""Training noise that is reproducible and the same under any number of DDP processes.

Each step draws the noise of the *global* batch from a generator seeded by (seed, stream,
counter) and every rank keeps its own contiguous slice, exactly as the data sampler slices the
global batch of images. So ranks get different noise, a run is reproducible, a resumed run
continues the same stream, and N processes with global batch B see the same (z, y) as one process
with batch B.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

# One stream per use, so the D step and the G step of the same counter never share noise.
STREAMS = {"d": 0, "g": 1}


def stream_seed(seed: int, stream: str, counter: int) -> int:
    """A 63-bit seed for one step of one stream; nearby inputs give unrelated seeds."""
    digest = hashlib.blake2b(f"{seed}:{STREAMS[stream]}:{counter}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def rank_noise(
    *,
    seed: int,
    stream: str,
    counter: int,
    per_rank: int,
    rank: int,
    world_size: int,
    latent_dim: int,
    num_classes: int,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor | None]:
    """This rank's slice of the global noise batch ``(z, y)``; ``y`` is None when unconditional."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of size {world_size}")
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(stream_seed(seed, stream, counter))
    total = per_rank * world_size
    z = torch.randn(total, latent_dim, generator=gen, device=device)
    y = (
        torch.randint(0, num_classes, (total,), generator=gen, device=device)
        if num_classes
        else None
    )
    part = slice(rank * per_rank, (rank + 1) * per_rank)
    return z[part], (y[part] if y is not None else None)
