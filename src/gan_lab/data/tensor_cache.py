"""The decoded-once cache of a dataset's uint8 tensors: a key per dataset + geometry, atomic
writes, and a damaged or stale file rebuilt rather than trusted.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from gan_lab.checkpoint_io import atomic_torch_save as save_atomically
from gan_lab.data.sources import ImageSet

log = logging.getLogger(__name__)


def cache_key(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]


def load_cached(path: Path) -> ImageSet | None:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        return ImageSet(blob["images"], blob["labels"], list(blob["class_names"]))
    except Exception as err:  # a stale or damaged cache is rebuilt, never trusted
        log.warning("ignoring unreadable data cache %s (%s)", path, err)
        return None


def store_cached(image_set: ImageSet, path: Path) -> None:
    try:
        save_atomically(
            {
                "images": image_set.images,
                "labels": image_set.labels,
                "class_names": image_set.class_names,
            },
            path,
        )
    except OSError as err:  # a read-only cache dir only costs speed
        log.warning("could not write data cache %s (%s)", path, err)
