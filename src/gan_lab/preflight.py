"""Validation of the composed config: one-line errors before any data loads or any file is written.

Architecture-level checks (image size vs network depth, channels) live in the networks'
constructors and run when train.py instantiates the model, which also happens before data loads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gan_lab.distributed import check_ddp_launch
from gan_lab.errors import ConfigError
from gan_lab.preflight_checks import check_reliability

PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16-true", "16-mixed", "64-true")


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None, throw_on_missing=False)


def _check(cfg: DictConfig, key: str, ok: Callable[[Any], bool], expected: str) -> None:
    value = _get(cfg, key)
    if value is not None and not ok(value):
        raise ConfigError(key, value, expected)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming the first bad key, its value and what is allowed."""
    _check(
        cfg,
        "data.batch_size",
        lambda v: _is_int(v) and v > 0,
        "must be a positive integer (the global batch)",
    )
    _check(
        cfg,
        "data.image_size",
        lambda v: _is_int(v) and v >= 8,
        "must be an integer >= 8 (pixels per side)",
    )
    _check(cfg, "data.channels", lambda v: v in (1, 3), "must be 1 (grey) or 3 (RGB)")
    _check(cfg, "data.num_workers", lambda v: _is_int(v) and v >= 0, "must be an integer >= 0")
    _check(cfg, "model.n_critic", lambda v: _is_int(v) and v >= 1, "must be an integer >= 1")
    for net in ("optimizer_g", "optimizer_d"):
        _check(
            cfg,
            f"model.{net}.lr",
            lambda v: _is_number(v) and v > 0,
            "must be a positive number, e.g. 2e-4",
        )
    _check(
        cfg,
        "trainer.max_steps",
        lambda v: _is_int(v) and (v > 0 or v == -1),
        "must be a positive number of generator steps (or -1 with trainer.max_epochs)",
    )
    _check(
        cfg,
        "trainer.precision",
        lambda v: str(v) in PRECISIONS,
        f"choose one of {', '.join(PRECISIONS)}",
    )
    for key, fix in (
        ("trainer.gradient_clip_val", "set model.grad_clip_g / model.grad_clip_d instead"),
        (
            "trainer.accumulate_grad_batches",
            "manual optimization does not accumulate; raise data.batch_size instead",
        ),
    ):
        value = _get(cfg, key)
        if value not in (None, 1, 0) or (key.endswith("clip_val") and value not in (None, 0)):
            raise ConfigError(
                key, value, f"not supported with the GAN's manual optimization; {fix}"
            )
    _check_batch_divides_world(cfg)
    check_ddp_launch(cfg)
    _check_networks_match_data(cfg)
    check_reliability(cfg)  # ranges, combinations, paths, never overwriting a run


def _check_networks_match_data(cfg: DictConfig) -> None:
    """Networks read size and channels from data.*; a hand override that disagrees is a mistake."""
    for net in ("generator", "discriminator"):
        for field in ("image_size", "channels"):
            mine, data = _get(cfg, f"model.{net}.{field}"), _get(cfg, f"data.{field}")
            if mine is not None and data is not None and mine != data:
                raise ConfigError(
                    f"model.{net}.{field}",
                    mine,
                    f"must equal data.{field}={data!r} (the images the {net} sees); drop the override "
                    f"or set data.{field}={mine!r}",
                )


def _check_batch_divides_world(cfg: DictConfig) -> None:
    devices, nodes, batch = (
        _get(cfg, "trainer.devices"),
        _get(cfg, "trainer.num_nodes"),
        _get(cfg, "data.batch_size"),
    )
    if _is_int(devices) and _is_int(nodes) and _is_int(batch) and devices > 0:
        world = devices * nodes
        if batch % world:
            raise ConfigError(
                "data.batch_size",
                batch,
                f"the global batch must divide by world size {world} (trainer.devices={devices} x "
                f"trainer.num_nodes={nodes}); use a multiple of {world}",
            )
