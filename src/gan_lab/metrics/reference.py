"""Reference (real-image) features, computed once and cached on disk.

The cache key holds everything that changes the features: the dataset (source and path), the
split, the image shape, the number of images, the extractor (network + weights checksum) and a
protocol version. A stale or unreadable file is recomputed, never trusted.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from torch import Tensor

from gan_lab.checkpoint_io import atomic_torch_save as save_atomically
from gan_lab.data.sources import ImageSet
from gan_lab.data.tensor_cache import cache_key
from gan_lab.metrics.features import FeatureExtractor

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1


def reference_subset(images: ImageSet, n: int | None, seed: int = 0) -> ImageSet:
    """``n`` images drawn without replacement by a fixed seed (all of them when ``n`` is None)."""
    if n is None or n >= len(images):
        return images
    index = (
        torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    )
    return images.subset(index)


def reference_cache_file(
    cache_dir: Path, dataset: str, split: str, images: ImageSet, extractor: FeatureExtractor
) -> Path:
    shape = "x".join(map(str, images.images.shape[1:]))
    key = cache_key(
        dataset, split, shape, len(images), extractor.name, extractor.protocol, PROTOCOL_VERSION
    )
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in dataset.split(":")[0])
    return cache_dir / f"ref-{safe}-{split}-{len(images)}-{extractor.name}-{key}.pt"


def reference_features(
    extractor: FeatureExtractor,
    images: ImageSet,
    cache_file: Path | None,
    batch_size: int = 500,
) -> Tensor:
    """Features of ``images`` (float32, N x D), from ``cache_file`` when it holds them."""
    if cache_file is not None and cache_file.is_file():
        try:
            blob = torch.load(cache_file, map_location="cpu", weights_only=True)
            if blob["protocol"] == extractor.protocol and blob["features"].shape[0] == len(images):
                return blob["features"]
            log.warning("reference cache %s does not match; recomputing", cache_file)
        except Exception as err:  # damaged file: recompute
            log.warning("ignoring unreadable reference cache %s (%s)", cache_file, err)
    start = time.perf_counter()
    features = torch.cat([extractor(chunk)[0].cpu() for chunk in images.images.split(batch_size)])
    log.info(
        "reference features: %d images through %s in %.1fs",
        len(images),
        extractor.name,
        time.perf_counter() - start,
    )
    if cache_file is not None:
        write_reference_cache(features, extractor, cache_file)
    return features


def write_reference_cache(features: Tensor, extractor: FeatureExtractor, cache_file: Path) -> None:
    """Store features for later runs; a failed write only costs the next run a recomputation."""
    try:
        save_atomically({"features": features, "protocol": extractor.protocol}, cache_file)
    except OSError as err:
        log.warning("could not write reference cache %s (%s)", cache_file, err)
