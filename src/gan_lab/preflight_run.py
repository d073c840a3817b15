"""Checks of ``gan-train`` that need more than the config: devices, constructors, data, checkpoint.

They run after :func:`gan_lab.preflight.validate_config` and before anything is written into
the run directory (see preflight_hook.py): a data set smaller than one batch, an image that does
not decode, a checkpoint of another architecture or ``trainer=gpu`` on a machine without one
cost a second and one line, not a half-made run directory and a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from gan_lab.errors import ConfigError, UserError

GPU_ACCELERATORS = ("gpu", "cuda")


def check_devices(cfg: DictConfig) -> None:
    """A GPU trainer on a machine without one (or with fewer than asked) fails here, not in Lightning."""
    accelerator = OmegaConf.select(cfg, "trainer.accelerator", default=None)
    if accelerator not in GPU_ACCELERATORS:
        return
    import torch

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available == 0:
        raise ConfigError(
            "trainer.accelerator",
            accelerator,
            "no CUDA GPU is visible here; use trainer=cpu (or trainer.accelerator=auto)",
        )
    devices = OmegaConf.select(cfg, "trainer.devices", default=None)
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > available:
        raise ConfigError(
            "trainer.devices",
            devices,
            f"only {available} GPU(s) visible; use trainer.devices={available} or fewer",
        )


def check_data(cfg: DictConfig) -> Any:
    """Build the datamodule and load its splits (download, decode, cache); returns it.

    Loading fills the cache outside the run dir, so the training run reads it again for free.
    """
    datamodule = hydra.utils.instantiate(cfg.data)
    try:
        datamodule.prepare_data()
        datamodule.setup("fit")
    except UserError:
        raise
    except (OSError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"data {datamodule.dataset_name} cannot be loaded: {first[:300]}") from None
    train = datamodule.train_set if datamodule.train_set is not None else datamodule.train_files
    batch = int(cfg.data.batch_size)
    if train is not None and len(train) < batch:
        raise ConfigError(
            "data.batch_size",
            batch,
            f"the training split of {datamodule.dataset_name} has only {len(train)} images, fewer "
            f"than one batch; use data.batch_size<={len(train)}",
        )
    return datamodule


def check_constructors(cfg: DictConfig) -> Any:
    """Build the model and the callbacks once: their constructors check their own arguments."""
    from gan_lab.utils import instantiate_callbacks

    instantiate_callbacks(cfg.get("callbacks"))
    return hydra.utils.instantiate(cfg.model)


def _shape_mismatches(stored: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    problems = [
        f"{k} has shape {list(v.shape)} in the checkpoint, {list(expected[k].shape)} in this config"
        for k, v in stored.items()
        if k in expected and hasattr(v, "shape") and tuple(v.shape) != tuple(expected[k].shape)
    ]
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing:
        problems.append(f"{len(missing)} weights missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected weights (e.g. {unexpected[0]})")
    return problems


def check_checkpoint_fits(model: Any, ckpt_path: str | None) -> None:
    """The resumed checkpoint's weights fit the composed model (same networks, same sizes)."""
    if ckpt_path is None:
        return
    from gan_lab.checkpoint_io import read_checkpoint

    checkpoint = read_checkpoint(ckpt_path)
    problems = _shape_mismatches(checkpoint.get("state_dict", {}), model.state_dict())
    if problems:
        raise ConfigError(
            "ckpt_path",
            str(ckpt_path),
            f"was written by a different model: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            + "; resume with the model/data config of that run, or start a new run",
        )


def resolve_and_check_checkpoint(cfg: DictConfig, model: Any) -> str | None:
    """``ckpt_path`` resolved (last/auto: the newest good file) and checked against the model."""
    from gan_lab.checkpoint_io import resolve_resume_path

    ckpt = resolve_resume_path(cfg.get("ckpt_path"), Path(cfg.paths.output_dir))
    check_checkpoint_fits(model, ckpt)
    return ckpt
