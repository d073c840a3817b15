"""Checks of ``gan-train`` that need more than the config: devices, the data, the checkpoint.

They run after :func:`gan_lab.preflight.validate_config` and before anything is written into
the run directory (see preflight_hook.py): a data set smaller than one batch, an image that does
not decode, a checkpoint of another architecture or ``trainer=gpu`` on a machine without one
cost a second and one line, not a half-made run directory and a traceback.
"""

from __future__ import annotations

from typing import Any

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


def check_data(datamodule: Any, batch_size: int) -> None:
    """Load the datamodule's splits (download, decode, cache) and check one batch fits.

    ``setup`` is idempotent: the fit that follows uses the splits loaded here.
    """
    try:
        datamodule.prepare_data()
        datamodule.setup("fit")
    except UserError:
        raise
    except (OSError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"data {datamodule.dataset_name} cannot be loaded: {first[:300]}") from None
    train = datamodule.train_set if datamodule.train_set is not None else datamodule.train_files
    if train is not None and len(train) < batch_size:
        raise ConfigError(
            "data.batch_size",
            batch_size,
            f"the training split of {datamodule.dataset_name} has only {len(train)} images, fewer "
            f"than one batch; use data.batch_size<={len(train)}",
        )


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
