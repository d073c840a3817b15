"""Checkpoints that survive a killed process and never run code when loaded.

Writes go to a temp file in the target folder, are fsynced, then renamed over the target: a
reader (or a resumed run) sees either the old file or the new one, never half of one. Each
checkpoint carries a SHA-256 digest of its contents (checkpoint_integrity.py), checked on load.
Loads use ``torch.load(weights_only=True)``, whose unpickler only builds tensors and plain
containers; the run config inside is rebuilt only from allow-listed classes
(safe_instantiate.py). Anything unreadable, corrupted or refused is one clear
:class:`CheckpointError`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from gan_lab.checkpoint_integrity import IntegrityMismatch, seal, verify
from gan_lab.errors import RunFailure, UserError

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"
# What a resumable checkpoint of ours must hold (Lightning's keys plus ours).
REQUIRED_KEYS = ("state_dict", "optimizer_states", "loops", "global_step")
# Kept for its metric, not for resuming: an earlier step than the run reached (callbacks/best_checkpoint.py)
BEST_NAME = "best.ckpt"


class CheckpointError(UserError):
    """A checkpoint is missing, truncated, tampered with or not ours."""


def fsync_dir(path: Path) -> None:
    """Make a rename durable: the directory entry itself must reach the disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temp file beside ``path``, fsync, rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        Path(tmp).unlink(missing_ok=True)
        raise write_failure(path, err) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_failure(path: Path, err: BaseException) -> RunFailure:
    """The real cause of a failed write (torch wraps the OSError in a RuntimeError's text)."""
    cause = err
    while cause.__cause__ is not None or cause.__context__ is not None:
        if isinstance(cause, OSError) and cause.errno:
            break
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    if isinstance(cause, OSError) and cause.errno:
        reason = os.strerror(cause.errno)
    else:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        reason = first[:200]
    try:
        free = shutil.disk_usage(path.parent).free
        reason += f" ({free / 2**20:.0f} MiB free on that disk)"
    except OSError:
        pass
    kept = (
        f"the previous {path.name} is intact" if path.exists() else "earlier checkpoints are intact"
    )
    return RunFailure(f"cannot write checkpoint {path}: {reason}; {kept}")


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``; every failure is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist; pass an existing .ckpt file or ckpt_path=last"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            reason = "it holds objects other than tensors and plain containers (tampered, or not a gan-lab checkpoint)"
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded safely: {reason[:300]}. It is truncated, corrupted or "
            f"tampered with; resume from an older checkpoint (ckpt_path=auto picks the newest good one)"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(checkpoint).__name__}, not a checkpoint dict"
        )
    try:
        verify(checkpoint, path)
    except IntegrityMismatch as err:
        raise CheckpointError(
            f"checkpoint {path} is corrupted: {err}; resume from an older checkpoint "
            f"(ckpt_path=last/auto skip it and take the newest good one)"
        ) from None
    return checkpoint


def check_resumable(checkpoint: dict[str, Any], path: str | Path) -> None:
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} cannot resume training: it lacks {', '.join(missing)} "
            f"(a weights-only or foreign file); resume from a full training checkpoint"
        )


def checkpoint_candidates(folders: Iterable[str | Path]) -> list[Path]:
    """The ``*.ckpt`` files of ``folders`` a run may resume from, newest first.

    Temp files of interrupted writes are excluded, and so is ``best.ckpt``: resuming from it
    would silently rewind the run to an earlier step.
    """
    files = {
        p.resolve()
        for folder in folders
        if Path(folder).is_dir()
        for p in Path(folder).glob("*.ckpt")
        if p.name != BEST_NAME
    }
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def find_latest_good(folders: Iterable[str | Path]) -> Path | None:
    """The newest checkpoint that loads and can resume; broken ones are reported and skipped."""
    for path in checkpoint_candidates(folders):
        try:
            check_resumable(read_checkpoint(path), path)
        except CheckpointError as err:
            log.warning("skipping unusable checkpoint: %s", err)
            continue
        return path
    return None


def remove_stale_temp_files(folder: str | Path) -> int:
    """Temp files left by a write that was killed half-way; they are never complete checkpoints."""
    removed = 0
    for tmp in Path(folder).glob(f".*.ckpt.*{TEMP_SUFFIX}") if Path(folder).is_dir() else []:
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with crash-safe writes and code-free, clearly failing reads."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__} does not take storage_options, got {storage_options!r}"
            )
        atomic_torch_save(seal(checkpoint), path)

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        checkpoint = read_checkpoint(path, map_location=map_location or "cpu")
        check_resumable(checkpoint, path)
        return checkpoint


def run_checkpoint_folders(output_dir: Path) -> list[Path]:
    """Where a run keeps checkpoints: ours, and Lightning's SLURM ``hpc_ckpt_*`` in the run dir."""
    return [output_dir / "checkpoints", output_dir]


def resolve_resume_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """``ckpt_path`` as given, ``last`` (``last.ckpt``, else the newest good one) or ``auto``.

    ``auto`` resumes from the newest checkpoint of the run directory that loads and starts fresh
    when there is none, so one command works for the first start and every requeue.
    """
    if ckpt_path is None:
        return None
    if ckpt_path in ("last", "auto"):
        last = output_dir / "checkpoints" / "last.ckpt"
        try:
            check_resumable(read_checkpoint(last), last)
            return str(last)
        except CheckpointError as err:
            if last.exists():
                log.warning("%s; looking for an older checkpoint", err)
        found = find_latest_good(run_checkpoint_folders(output_dir))
        if found is not None:
            log.info("resuming from %s", found)
            return str(found)
        broken = checkpoint_candidates(run_checkpoint_folders(output_dir))
        if broken:
            raise CheckpointError(
                f"ckpt_path={ckpt_path}: none of the {len(broken)} checkpoints in {output_dir} loads "
                f"(newest: {broken[0].name}); refusing to start over them. Move them away to start "
                f"a new run there, or pass ckpt_path=<file.ckpt>"
            )
        if ckpt_path == "auto":
            log.info("ckpt_path=auto: no checkpoint in %s yet, starting a new run", output_dir)
            return None
        raise CheckpointError(
            f"ckpt_path=last: no loadable checkpoint in {output_dir / 'checkpoints'}. Resume inside the old "
            f"run directory with hydra.run.dir=<run dir> ckpt_path=last, pass ckpt_path=<file.ckpt>, or use "
            f"ckpt_path=auto to start a new run when there is no checkpoint yet"
        )
    path = Path(ckpt_path).expanduser()
    check_resumable(read_checkpoint(path), path)
    return str(path)
