"""`gan-eval images=DIR`: the metrics of a folder of images (another codebase's samples, a
baseline's outputs), against a dataset's reference (``data=...``) or another folder
(``reference=DIR2``), with the same metrics, protocol strings and JSON as a checkpoint.

Files of any size and mode are decoded with PIL and brought to the dataset's shape in one
stated way (the protocol string names it): EXIF orientation applied, 16-bit and float images
scaled to 8 bits, alpha dropped, converted to grey (ITU-R 601 luma, as the datasets are) or RGB,
center-cropped to a square, resized with ``resize_filter`` (PIL, antialiased when shrinking).
Files already at the target size are not resampled, so lossless PNGs of generated samples
score exactly as the samples themselves.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image, ImageOps

from gan_lab.data.sources import IMAGE_EXTENSIONS, ImageSet
from gan_lab.errors import ConfigError, UserError

RESIZE_FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}


@dataclass
class ScoredFolder:
    """A folder's images at the scoring shape, with how they were made and a cache identity."""

    images: ImageSet
    path: Path
    protocol: str
    dataset_key: str  # names the reference cache: path, file list and preprocessing


def image_files(folder: Path, key: str) -> list[Path]:
    """Every image file under ``folder`` (recursively), sorted; a one-line error when none."""
    if not folder.is_dir():
        raise ConfigError(key, str(folder), "must be an existing folder of image files")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ConfigError(key, str(folder), f"holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer images scaled to 8 bits, float images clipped to [0, 255]."""
    if image.mode.startswith("I;16") or image.mode == "I":
        array = np.asarray(image, dtype=np.float64) / 257.0
        return Image.fromarray(array.round().clip(0, 255).astype(np.uint8))
    if image.mode == "F":
        return Image.fromarray(np.asarray(image).round().clip(0, 255).astype(np.uint8))
    return image


def load_image(path: Path, size: int, channels: int, resample: Image.Resampling) -> torch.Tensor:
    """One file as uint8 (channels, size, size), preprocessed as the module docstring says."""
    try:
        with Image.open(path) as opened:
            image = to_8bit(ImageOps.exif_transpose(opened))
            image = image.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError) as err:
        raise UserError(f"cannot decode image {path}: {err}") from err
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != size:
        image = image.resize((size, size), resample=resample)
    array = np.asarray(image, dtype=np.uint8).reshape(size, size, channels)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def folder_protocol(size: int, channels: int, resize_filter: str) -> str:
    colour = "grey (ITU-R 601 luma)" if channels == 1 else "RGB"
    return (
        f"PIL decode (EXIF orientation, 16-bit/float to 8-bit, alpha dropped), {colour}, "
        f"center square crop, PIL {resize_filter} resize to {size}x{size} (antialiased; "
        f"files already {size}x{size} not resampled)"
    )


def load_scored_folder(
    folder: str, key: str, size: int, channels: int, resize_filter: str, workers: int = 4
) -> ScoredFolder:
    """All images of ``folder`` at (channels, size, size); threads overlap IO and decoding."""
    if resize_filter not in RESIZE_FILTERS:
        raise ConfigError(
            "resize_filter", resize_filter, f"choose one of {', '.join(RESIZE_FILTERS)}"
        )
    path = Path(folder).expanduser().resolve()
    files = image_files(path, key)
    resample = RESIZE_FILTERS[resize_filter]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        images = list(pool.map(lambda f: load_image(f, size, channels, resample), files))
    protocol = folder_protocol(size, channels, resize_filter)
    listing = hashlib.sha256()
    for f in files:
        stat = f.stat()
        listing.update(f"{f.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    key_parts = f"folder:{path}:{listing.hexdigest()[:12]}:{protocol}"
    labels = torch.zeros(len(images), dtype=torch.long)
    return ScoredFolder(
        ImageSet(torch.stack(images), labels, [path.name]), path, protocol, key_parts
    )


def check_folder_settings(cfg: DictConfig) -> None:
    """Folder mistakes before any network is built or any data is loaded."""
    for key in ("images", "reference"):
        if cfg.get(key):
            image_files(Path(cfg[key]).expanduser(), key)
    if (cfg.get("images") or cfg.get("reference")) and cfg.resize_filter not in RESIZE_FILTERS:
        raise ConfigError(
            "resize_filter", cfg.resize_filter, f"choose one of {', '.join(RESIZE_FILTERS)}"
        )


def scoring_shape(cfg: DictConfig, datamodule: Any | None) -> tuple[int, int]:
    """(image size, channels): the dataset's; folder vs folder: ``image_size``/``channels``, else
    those of the reference folder's first image."""
    if datamodule is not None:
        return int(datamodule.image_size), int(datamodule.channels)
    size, channels = cfg.get("image_size"), cfg.get("channels")
    if size is None or channels is None:
        first = image_files(Path(cfg.reference).expanduser(), "reference")[0]
        with Image.open(first) as image:
            grey = image.mode in ("1", "L", "I", "F") or image.mode.startswith("I;16")
            size, channels = size or min(image.size), channels or (1 if grey else 3)
    for key, value, allowed in (("image_size", size, None), ("channels", channels, (1, 3))):
        if not isinstance(value, int) or value < 1 or (allowed and value not in allowed):
            raise ConfigError(
                key, value, "must be 1 or 3" if allowed else "must be an integer >= 1"
            )
    return size, channels


def describe(folder: ScoredFolder) -> dict[str, Any]:
    """What the JSON report says about a folder side."""
    return {"folder": str(folder.path), "n": len(folder.images), "preprocessing": folder.protocol}


__all__ = [
    "RESIZE_FILTERS",
    "ScoredFolder",
    "check_folder_settings",
    "describe",
    "load_scored_folder",
    "scoring_shape",
]
