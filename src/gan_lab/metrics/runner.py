"""Feeding a :class:`MetricSuite`: reference images (cached) and generated samples, per rank.

Under DDP every rank adds a disjoint share of the reference set and generates its own share of
the samples (``rank_share``: the shares add up to exactly ``n``); the suite's ``compute()``
then reduces the statistics across ranks. Reference features are cached on disk by rank 0 (the
ranks' slices gathered) and read by every later run, single-process or DDP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gan_lab.data.sources import ImageSet
from gan_lab.data.transforms import float_to_uint8
from gan_lab.metrics.features import FeatureExtractor
from gan_lab.metrics.reference import (
    reference_cache_file,
    reference_features,
    reference_subset,
    write_reference_cache,
)
from gan_lab.metrics.suite import MetricSuite


def rank_share(n: int, rank: int, world_size: int) -> int:
    """This rank's number of samples; the first ``n % world_size`` ranks take one extra."""
    return n // world_size + int(rank < n % world_size)


def generated_batches(
    module: torch.nn.Module, n: int, batch_size: int, seed: int
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """``n`` uint8 samples of ``module.generate`` (the EMA generator) with their requested classes.

    The noise comes from its own seed, so training's random stream is left untouched and the
    same ``seed`` gives the same samples.
    """
    device = module.device
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        done = 0
        while done < n:
            b = min(batch_size, n - done)
            z, y = module.sample_noise(b)
            yield float_to_uint8(module.generate(z, y)), y
            done += b


def add_generated(
    suite: MetricSuite, module: torch.nn.Module, n: int, batch_size: int, seed: int
) -> int:
    """Generate ``n`` samples into the suite; returns how many were added."""
    count = 0
    for images, y in generated_batches(module, n, batch_size, seed):
        suite.add_fake(images, y)
        count += len(images)
    return count


def add_reference(
    suite: MetricSuite,
    images: ImageSet,
    dataset: str,
    split: str,
    cache_dir: Path | None,
    rank: int = 0,
    world_size: int = 1,
    batch_size: int = 500,
) -> None:
    """Reference features of every extractor that needs them; this rank adds its share only."""
    for name, needed in suite.needs_real.items():
        if not needed:
            continue
        extractor = suite.extractors[name]
        cache_file = (
            reference_cache_file(cache_dir, dataset, split, images, extractor)
            if cache_dir
            else None
        )
        cached = cache_file is not None and cache_file.is_file()
        if world_size > 1:  # one decision for all ranks: what follows may be collective
            cached = all(gather_from_ranks(cached, world_size))
        if world_size > 1 and not cached:
            # no cache yet: each rank computes its own slice only, then rank 0 caches them all
            shard = images.subset(torch.arange(rank, len(images), world_size))
            features = reference_features(extractor, shard, None, batch_size)
            suite.add_real_features(name, features)
            if cache_file is not None:
                cache_gathered_shards(
                    features, len(images), extractor, cache_file, rank, world_size
                )
            continue
        features = reference_features(extractor, images, cache_file, batch_size)
        suite.add_real_features(name, features[rank::world_size])


def gather_from_ranks(obj: Any, world_size: int) -> list[Any]:
    """Every rank's ``obj`` in rank order (collective); ``[obj]`` without a process group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() != world_size:
        return [obj]
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def cache_gathered_shards(
    shard: Tensor, n: int, extractor: FeatureExtractor, cache_file: Path, rank: int, world_size: int
) -> None:
    """Rank 0 reassembles the ranks' interleaved slices (rank r holds images r, r + W, ...) and
    caches them, so the next run, single-process or DDP, reads instead of recomputing.

    Collective: every rank calls it once per extractor. Without a process group nothing can be
    gathered and nothing is cached.
    """
    parts = gather_from_ranks(shard.cpu(), world_size)
    if len(parts) != world_size or rank != 0:
        return
    full = torch.empty(n, shard.shape[1], dtype=shard.dtype)
    for r, part in enumerate(parts):
        full[r::world_size] = part
    write_reference_cache(full, extractor, cache_file)


__all__ = ["add_generated", "add_reference", "generated_batches", "rank_share", "reference_subset"]
