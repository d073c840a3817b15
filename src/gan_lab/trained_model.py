"""Rebuild a trained GAN (and its datamodule) from a checkpoint alone, for gan-eval and gan-sample.

Every checkpoint carries ``run_config``: the resolved Hydra config of its run as plain dicts
(see callbacks/run_config.py), so the networks are instantiated exactly as they were trained
and the weights are loaded with ``torch.load(weights_only=True)`` (no pickled code runs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from gan_lab.errors import UserError
from gan_lab.utils import instantiate_model

log = logging.getLogger(__name__)


@dataclass
class LoadedCheckpoint:
    module: Any  # GANModule in eval mode on the requested device
    run_config: dict[str, Any]
    global_step: int
    path: Path


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(
            f"device={device!r} but CUDA is not available here; use device=cpu or device=auto"
        )
    return torch.device(device)


def load_trained_gan(ckpt_path: str | None, device: str = "cpu") -> LoadedCheckpoint:
    """The GANModule of a gan-train checkpoint, weights loaded, ready for ``generate``."""
    if not ckpt_path:
        raise UserError("ckpt_path is missing: pass ckpt_path=<run dir>/checkpoints/last.ckpt")
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise UserError(
            f"ckpt_path={ckpt_path!r} does not exist; pass a .ckpt file written by gan-train"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(
            f"ckpt_path={ckpt_path!r} is not a readable checkpoint ({type(err).__name__}: {err})"
        ) from err
    run_config = checkpoint.get("run_config")
    if not isinstance(run_config, dict) or "model" not in run_config:
        raise UserError(
            f"ckpt_path={ckpt_path!r} has no run_config (it was not written by gan-train); "
            "cannot rebuild the networks"
        )
    module = instantiate_model(OmegaConf.create(run_config["model"]))
    module.load_state_dict(checkpoint["state_dict"])
    module.to(pick_device(device)).eval()
    return LoadedCheckpoint(module, run_config, int(checkpoint.get("global_step", 0)), path)


def build_datamodule(data_cfg: dict[str, Any] | DictConfig, overrides: dict[str, Any]) -> Any:
    """The run's datamodule, with machine-specific keys (data_dir, cache_dir, path) replaced."""
    cfg = OmegaConf.create(
        OmegaConf.to_container(data_cfg, resolve=True)
        if isinstance(data_cfg, DictConfig)
        else data_cfg
    )
    for key, value in overrides.items():
        if value is not None:
            cfg[key] = value
    return hydra.utils.instantiate(cfg)
