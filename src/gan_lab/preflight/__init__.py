"""Preflight: the cross-cutting checks of the composed config, run once per ``gan-train``.

One-line errors before any data loads or any file is written. Each constructor owns its own
arguments (``GANModule``, the networks, the regularizers, the callbacks raise
:class:`~gan_lab.errors.ConfigError` for theirs; ``gan-train`` builds them before writing);
what is checked here spans groups or belongs to no constructor that runs that early:

- :mod:`.values`: ranges of keys read only at fit time, combinations, world size and launch
  mode, networks against data geometry;
- :mod:`.run_dir`: the filesystem, last (paths, ``ckpt_path``, never overwriting a run).

The helpers that read and check one key live in :mod:`.keys`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from gan_lab.preflight.keys import POSITIVE_INT, check
from gan_lab.preflight.run_dir import check_before_writing
from gan_lab.preflight.values import (
    check_combinations,
    check_data,
    check_model,
    check_networks_match_data,
    check_trainer,
    check_world,
)

# periods of callbacks whose constructors are Lightning's (they accept 0 and mean "never")
LIGHTNING_CALLBACK_PERIODS = ("callbacks.model_checkpoint.every_n_train_steps",)


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming the first bad key, its value and what is allowed."""
    check_data(cfg)
    check_model(cfg)
    check_trainer(cfg)
    for key in LIGHTNING_CALLBACK_PERIODS:
        check(cfg, key, *POSITIVE_INT)
    check_combinations(cfg)
    check_world(cfg)
    check_networks_match_data(cfg)
    check_before_writing(cfg)  # the filesystem last: every cheaper mistake is reported first


__all__ = ["validate_config"]
