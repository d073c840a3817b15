"""More checks of the composed config: ranges, combinations, paths and the run directory.

Called from :func:`gan_lab.preflight.validate_config`, i.e. before any data loads and before
anything is written: a typo costs a second, not a run. Filesystem checks only read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gan_lab.distributed import is_rank_zero
from gan_lab.errors import ConfigError

RESUME_MODES = ("last", "auto")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
LR_SCHEDULES = ("constant", "linear")
# the callbacks of this package that take a policy, and the policies each accepts
POLICIES = {
    "callbacks.divergence_guard.policy": ("skip", "stop", "rollback"),
    "callbacks.health_monitor.policy": ("continue", "stop", "rollback"),
}


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None, throw_on_missing=False)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check(cfg: DictConfig, key: str, ok: Callable[[Any], bool], expected: str) -> None:
    value = _get(cfg, key)
    if value is not None and not ok(value):
        raise ConfigError(key, value, expected)


def check_ranges(cfg: DictConfig) -> None:
    """Types and ranges of the keys the base validation leaves out."""
    positive_int = (lambda v: _is_int(v) and v >= 1, "must be an integer >= 1")
    _check(cfg, "seed", _is_int, "must be an integer, or null for a random seed")
    _check(
        cfg,
        "data.heldout_fraction",
        lambda v: _is_number(v) and 0 < v < 1,
        "must be in (0, 1), e.g. 0.1",
    )
    _check(cfg, "data.source.num_samples", *positive_int)
    for key in ("data.hflip", "data.pin_memory", "trainer.deterministic"):
        _check(cfg, key, lambda v: isinstance(v, bool), "must be true or false")
    _check(
        cfg,
        "model.ema_decay",
        lambda v: _is_number(v) and 0 < v < 1,
        "must be in (0, 1), e.g. 0.999, or null",
    )
    _check(cfg, "model.ema_start_step", lambda v: _is_int(v) and v >= 0, "must be an integer >= 0")
    _check(cfg, "model.num_fixed_samples", *positive_int)
    _check(
        cfg,
        "model.lr_schedule",
        lambda v: v in LR_SCHEDULES,
        f"choose one of {', '.join(LR_SCHEDULES)}",
    )
    for key in ("model.grad_clip_g", "model.grad_clip_d"):
        _check(
            cfg,
            key,
            lambda v: _is_number(v) and v > 0,
            "must be a positive number, or null for no clipping",
        )
    for opt in ("optimizer_g", "optimizer_d"):
        _check(
            cfg,
            f"model.{opt}.betas",
            lambda v: len(v) == 2 and all(_is_number(b) and 0 <= b < 1 for b in v),
            "must be two numbers in [0, 1), e.g. [0.5, 0.999]",
        )
        _check(
            cfg,
            f"model.{opt}.weight_decay",
            lambda v: _is_number(v) and v >= 0,
            "must be a number >= 0",
        )
    _check(
        cfg,
        "trainer.accelerator",
        lambda v: v in ACCELERATORS,
        f"choose one of {', '.join(ACCELERATORS)}",
    )
    _check(cfg, "trainer.num_nodes", *positive_int)
    _check(
        cfg,
        "trainer.devices",
        lambda v: (
            v == "auto"
            or (_is_int(v) and (v >= 1 or v == -1))
            or not isinstance(v, str | int | float)
        ),
        'must be a number of devices >= 1, -1 (all), "auto" or a list of device ids',
    )
    _check(cfg, "trainer.log_every_n_steps", *positive_int)
    _check(cfg, "callbacks.model_checkpoint.every_n_train_steps", *positive_int)
    _check(cfg, "callbacks.sample_grid.every_n_steps", *positive_int)
    for key, allowed in POLICIES.items():
        _check(
            cfg, key, lambda v, allowed=allowed: v in allowed, f"choose one of {', '.join(allowed)}"
        )


def check_combinations(cfg: DictConfig) -> None:
    """Values that are fine alone but not together."""
    max_steps, max_epochs = _get(cfg, "trainer.max_steps"), _get(cfg, "trainer.max_epochs")
    if max_steps == -1 and max_epochs in (None, -1):
        raise ConfigError(
            "trainer.max_steps",
            max_steps,
            "with trainer.max_epochs=-1 the run never ends; set one of them",
        )
    if _get(cfg, "model.lr_schedule") == "linear" and max_steps == -1:
        raise ConfigError(
            "model.lr_schedule",
            "linear",
            "decays to 0 at trainer.max_steps, so it needs trainer.max_steps > 0",
        )
    precision, accelerator = str(_get(cfg, "trainer.precision")), _get(cfg, "trainer.accelerator")
    if precision.startswith("16") and accelerator == "cpu":
        raise ConfigError(
            "trainer.precision", precision, "fp16 needs a GPU; on CPU use bf16-mixed or 32-true"
        )
    batch, size = _get(cfg, "data.batch_size"), _get(cfg, "data.source.num_samples")
    if _is_int(batch) and _is_int(size) and size < batch:  # a source that makes its images
        raise ConfigError(
            "data.source.num_samples", size, f"is smaller than one batch (data.batch_size={batch})"
        )


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable(key: str, path: Path) -> None:
    existing = _first_existing(path)
    if not existing.is_dir():
        raise ConfigError(
            key, str(path), f"{existing} is a file, not a folder; choose another location"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(key, str(path), f"{existing} is not writable; choose a writable location")


def _tensorboard_dirs(cfg: DictConfig) -> list[tuple[str, Path]]:
    loggers = _get(cfg, "logger") or {}
    return [
        (f"logger.{name}.save_dir", Path(str(node.save_dir)))
        for name, node in loggers.items()
        if isinstance(node, DictConfig)
        and "TensorBoard" in str(node.get("_target_", ""))
        and node.get("save_dir")
    ]


def _event_file_is_readable(path: Path) -> bool:
    """The first TFRecord header has a valid CRC (garbage or a foreign file does not)."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    with open(path, "rb") as f:
        header = f.read(12)
    if len(header) < 12:
        return len(header) == 0  # an empty file is a writer that never flushed
    return masked_crc32c(header[:8]) == int.from_bytes(header[8:12], "little")


def check_paths(cfg: DictConfig) -> None:
    """Outputs can be written; TensorBoard dirs are folders of readable event files."""
    output_dir = _get(cfg, "paths.output_dir")
    if output_dir is None:
        return
    _check_writable("paths.output_dir", Path(str(output_dir)))
    for key, save_dir in _tensorboard_dirs(cfg):
        if save_dir.exists() and not save_dir.is_dir():
            raise ConfigError(
                key, str(save_dir), "exists but is a file, not a TensorBoard folder; move it away"
            )
        _check_writable(key, save_dir)
        for events in sorted(save_dir.glob("events.out.tfevents.*")) if save_dir.is_dir() else []:
            if not _event_file_is_readable(events):
                raise ConfigError(
                    key,
                    str(save_dir),
                    f"holds a corrupted event file {events.name}; move it away to continue the curves",
                )


def check_resume_and_run_dir(cfg: DictConfig) -> None:
    """``ckpt_path`` names something usable; a new run never writes into an old run's directory."""
    ckpt_path = _get(cfg, "ckpt_path")
    if ckpt_path is not None and ckpt_path not in RESUME_MODES:
        path = Path(str(ckpt_path)).expanduser()
        if not path.is_file():
            raise ConfigError(
                "ckpt_path", ckpt_path, "is not a file; pass an existing .ckpt, last, auto or null"
            )
    output_dir = _get(cfg, "paths.output_dir")
    if ckpt_path is not None or output_dir is None or not is_rank_zero():
        return  # resuming writes into the run dir on purpose; DDP children share rank 0's dir
    out = Path(str(output_dir))
    earlier = [
        p
        for p in (out / "checkpoints", *(d for _, d in _tensorboard_dirs(cfg)))
        if p.is_dir() and any(p.iterdir())
    ]
    if earlier:
        raise ConfigError(
            "paths.output_dir",
            str(out),
            f"already holds a run ({', '.join(p.name + '/' for p in earlier)}) and is never overwritten; "
            f"continue it with ckpt_path=last (or auto), or drop hydra.run.dir for a new directory",
        )


def check_reliability(cfg: DictConfig) -> None:
    check_ranges(cfg)
    check_combinations(cfg)
    check_resume_and_run_dir(cfg)
    check_paths(cfg)
