"""Checks before anything is written: outputs are writable, ``ckpt_path`` names something usable,
and a new run never writes into an old run's directory. They only read the filesystem.

Add checks of what is on disk here (data sets, run locks, checkpoints), called from
:func:`check_before_writing`, the last step of :func:`gan_lab.preflight.validate_config`.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from gan_lab.distributed import is_rank_zero
from gan_lab.errors import ConfigError
from gan_lab.preflight.keys import get as _get

RESUME_MODES = ("last", "auto")


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


def check_before_writing(cfg: DictConfig) -> None:
    check_resume_and_run_dir(cfg)
    check_paths(cfg)
