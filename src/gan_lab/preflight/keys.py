"""Reading and checking one key of the composed config (the helpers every preflight check uses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gan_lab.errors import ConfigError


def get(cfg: DictConfig, key: str) -> Any:
    """The value at a dotted key, None when absent (a group left out is not an error here)."""
    return OmegaConf.select(cfg, key, default=None, throw_on_missing=False)


def check(cfg: DictConfig, key: str, ok: Callable[[Any], bool], expected: str) -> None:
    """Raise a one-line :class:`ConfigError` when the key is set and ``ok`` rejects it."""
    value = get(cfg, key)
    if value is not None and not ok(value):
        raise ConfigError(key, value, expected)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


POSITIVE_INT = (lambda v: is_int(v) and v >= 1, "must be an integer >= 1")
