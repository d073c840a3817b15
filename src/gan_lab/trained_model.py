"""Rebuild a trained GAN (and its datamodule) from a checkpoint alone, for gan-eval and gan-sample.

Every checkpoint carries ``run_config``: the resolved Hydra config of its run as plain dicts
(see callbacks/run_config.py), so the networks are instantiated exactly as they were trained
and the weights are loaded with ``torch.load(weights_only=True)`` (no pickled code runs). The
config is data from a file: only allow-listed targets are instantiated (safe_instantiate.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from gan_lab.checkpoint_io import read_checkpoint
from gan_lab.errors import UserError
from gan_lab.safe_instantiate import check_tree, instantiate_stored
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


# ckpt_path names for a training run's own checkpoints (with run_dir=<gan-train run directory>)
NAMED_CHECKPOINTS = {"last": "last.ckpt", "best": "best.ckpt"}


def resolve_named_checkpoint(ckpt_path: str | None, run_dir: str | None) -> str | None:
    """``ckpt_path=last|best`` with ``run_dir``: that run's ``checkpoints/<name>.ckpt``; else as given."""
    if ckpt_path not in NAMED_CHECKPOINTS:
        return ckpt_path
    if not run_dir:
        raise UserError(
            f"ckpt_path={ckpt_path} names a checkpoint of a training run: add run_dir=<gan-train "
            f"run directory> (it holds checkpoints/{NAMED_CHECKPOINTS[ckpt_path]})"
        )
    path = Path(run_dir).expanduser() / "checkpoints" / NAMED_CHECKPOINTS[ckpt_path]
    if not path.is_file():
        why = (
            "it keeps one only with callbacks.best_checkpoint.monitor set, once that metric was logged"
            if ckpt_path == "best"
            else "it was stopped before its first checkpoint, or this is not a gan-train run"
        )
        raise UserError(
            f"ckpt_path={ckpt_path}: run {run_dir} has no {path.name} ({why}); "
            f"pass ckpt_path=<file.ckpt> or another run_dir"
        )
    return str(path)


def read_run_checkpoint(
    ckpt_path: str | None, run_dir: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """The checkpoint dict (digest verified, no code run) and its ``run_config``, checked."""
    if not ckpt_path:
        raise UserError(
            "ckpt_path is missing: pass ckpt_path=<run dir>/checkpoints/last.ckpt "
            "(or run_dir=<run dir> ckpt_path=best)"
        )
    ckpt_path = resolve_named_checkpoint(ckpt_path, run_dir)
    path = Path(str(ckpt_path)).expanduser()
    if not path.is_file():
        raise UserError(
            f"ckpt_path={ckpt_path!r} does not exist; pass a .ckpt file written by gan-train"
        )
    checkpoint = read_checkpoint(path)
    run_config = checkpoint.get("run_config")
    if not isinstance(run_config, dict) or not isinstance(run_config.get("model"), dict):
        raise UserError(
            f"ckpt_path={ckpt_path!r} has no run_config (it was not written by gan-train); "
            "cannot rebuild the networks"
        )
    check_tree(run_config["model"], "run_config.model", f"checkpoint {path}")
    if isinstance(run_config.get("data"), dict):
        check_tree(run_config["data"], "run_config.data", f"checkpoint {path}")
    return path, checkpoint


def load_trained_gan(
    ckpt_path: str | None, device: str = "cpu", run_dir: str | None = None
) -> LoadedCheckpoint:
    """The GANModule of a gan-train checkpoint, weights loaded, ready for ``generate``."""
    path, checkpoint = read_run_checkpoint(ckpt_path, run_dir)
    run_config = checkpoint["run_config"]
    # every _target_ of the tree passed check_tree in read_run_checkpoint
    module = instantiate_model(OmegaConf.create(run_config["model"]))
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except (KeyError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"checkpoint {path}: its weights do not fit the networks of its own run_config ({first[:200]})"
        ) from None
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
    tree = OmegaConf.to_container(cfg, resolve=True)
    return instantiate_stored(tree, "data", "the run's data config")
