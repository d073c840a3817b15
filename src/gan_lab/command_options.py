"""Bounds of the ``gan-eval`` and ``gan-sample`` options, checked before a checkpoint loads.

Upper bounds keep a typo (``n=1000000``) from filling a disk with PNGs or the memory with
Inception features; the values are far above what papers use (FID at 50k samples).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gan_lab.errors import ConfigError, UserError

SPLITS = ("train", "test")
MAX_EVAL_IMAGES = 200_000
MAX_SAMPLES = 10_000
MAX_BATCH = 4096
DEVICE_PATTERN = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_int(cfg: DictConfig, key: str, least: int, most: int) -> None:
    value = OmegaConf.select(cfg, key, default=None)
    if not _is_int(value) or not least <= value <= most:
        raise ConfigError(key, value, f"must be an integer in [{least}, {most}]")


def check_bool(cfg: DictConfig, key: str) -> None:
    value = OmegaConf.select(cfg, key, default=None)
    if not isinstance(value, bool):
        raise ConfigError(key, value, "must be true or false")


def check_device_name(cfg: DictConfig) -> None:
    device = cfg.get("device")
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise ConfigError("device", device, "choose cpu, cuda, cuda:<index> or auto")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "device", device, "CUDA is not available here; use device=cpu or auto"
            )


def check_output_path(key: str, path: Path, folder: bool) -> None:
    """``path`` (a file, or a folder when ``folder``) can be created: no file in the way, writable."""
    if path.exists() and path.is_dir() != folder:
        kind = "a folder" if path.is_dir() else "a file"
        raise ConfigError(key, str(path), f"is {kind}; choose another path")
    existing = path if folder else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            key, str(path), f"{existing} is a file, not a folder; choose another path"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(key, str(path), f"{existing} is not writable; choose a writable location")


def check_eval_options(cfg: DictConfig) -> None:
    """Counts, splits, device and output file of ``gan-eval`` (metric classes own their options)."""
    for key in ("n_samples", "n_reference"):
        check_int(cfg, key, 2, MAX_EVAL_IMAGES)
    check_int(cfg, "batch_size", 2, MAX_BATCH)
    check_int(cfg, "seed", 0, 2**31 - 1)
    split = cfg.get("reference_split")
    if split not in SPLITS:
        raise ConfigError("reference_split", split, f"choose one of {', '.join(SPLITS)}")
    compare = cfg.get("compare_split")
    if compare is not None and compare not in SPLITS:
        raise ConfigError("compare_split", compare, f"choose one of {', '.join(SPLITS)}, or null")
    if compare is None and not cfg.get("images") and not cfg.get("ckpt_path"):
        raise UserError(
            "ckpt_path is missing: pass ckpt_path=<run dir>/checkpoints/last.ckpt "
            "(or images=<folder> to score a folder, or compare_split=test data=<dataset> for "
            "the real-vs-real baseline)"
        )
    check_device_name(cfg)
    check_output_path("output_file", Path(str(cfg.output_file)).expanduser(), folder=False)


def check_sample_options(cfg: DictConfig) -> None:
    """Counts, grid shape, device and output folder of ``gan-sample``."""
    check_int(cfg, "n", 1, MAX_SAMPLES)
    check_int(cfg, "nrow", 1, MAX_SAMPLES)
    check_int(cfg, "batch_size", 1, MAX_BATCH)
    check_int(cfg, "seed", 0, 2**31 - 1)
    check_int(cfg, "interpolation.rows", 1, 256)
    check_int(cfg, "interpolation.steps", 2, 1024)
    check_int(cfg, "interpolation.fps", 1, 100)
    check_int(cfg, "per_class", 1, 256)
    check_bool(cfg, "individual")
    check_bool(cfg, "interpolation.gif")
    check_device_name(cfg)
    check_output_path("output_dir", Path(str(cfg.output_dir)).expanduser(), folder=True)
