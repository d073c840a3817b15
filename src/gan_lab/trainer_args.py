"""The Trainer's arguments from ``cfg.trainer``: gan-lab's own keys turned into Lightning's."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gan_lab.precision_auto import resolve_precision
from gan_lab.run_length import resolved_max_steps


def trainer_config(cfg: DictConfig) -> DictConfig:
    """``cfg.trainer`` as Lightning's Trainer takes it: ``max_kimg`` converted into ``max_steps``,
    ``precision=auto`` into this machine's fast format (precision_auto.py)."""
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert isinstance(trainer, dict)
    trainer["max_steps"] = resolved_max_steps(cfg)
    if "precision" in trainer:
        cache_dir = (
            OmegaConf.select(cfg, "paths.cache_dir", default=None) or Path.home() / ".cache/gan_lab"
        )
        trainer["precision"] = resolve_precision(
            trainer["precision"], str(trainer.get("accelerator", "auto")), cache_dir
        )
    trainer.pop("max_kimg", None)
    return OmegaConf.create(trainer)
