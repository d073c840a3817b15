"""Damaged and hostile inputs for the reliability tests: checkpoints, image folders, run dirs."""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from PIL import Image

from gan_lab.checkpoint_integrity import seal
from gan_lab.run_lock import LOCK_NAME, process_start_time
from tests.conftest import FAST_OVERRIDES, TINY_MLP_GAN, compose_train_config

TRAIN_ARGS = [*FAST_OVERRIDES, *TINY_MLP_GAN, "trainer.max_steps=2"]


def train_tiny_run(run_dir: Path, *extra: str) -> Path:
    """Two G steps of the tiny MLP GAN with a checkpoint after each: step_*.ckpt and last.ckpt."""
    from gan_lab.train import train_and_record

    overrides = [*TINY_MLP_GAN, "trainer.max_steps=2"]
    overrides += ["callbacks.model_checkpoint.every_n_train_steps=1", *extra]
    train_and_record(compose_train_config(overrides, run_dir))
    return run_dir


def flip_tensor_bytes(path: Path, n: int = 64) -> None:
    """Invert ``n`` bytes inside the largest tensor's storage; the zip container stays valid."""
    checkpoint = torch.load(path, weights_only=True)
    largest = max(checkpoint["state_dict"].values(), key=lambda t: t.numel())
    payload = largest.contiguous().view(-1).view(torch.uint8).numpy().tobytes()
    data = bytearray(path.read_bytes())
    start = data.find(payload[:256])
    assert start >= 0, "tensor bytes not found in the file"
    for i in range(start + 16, start + 16 + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def resave(source: Path, target: Path, change: Any) -> Path:
    """``source`` loaded, changed by ``change(checkpoint)``, sealed again (a valid digest) and saved."""
    checkpoint = copy.deepcopy(torch.load(source, weights_only=True))
    change(checkpoint)
    torch.save(seal(checkpoint), target)
    return target


def with_target(target: str, args: list[Any]) -> Any:
    """A change that makes the stored model config call ``target(*args)`` when instantiated."""

    def change(checkpoint: dict[str, Any]) -> None:
        checkpoint["run_config"]["model"]["generator"] = {"_target_": target, "_args_": args}

    return change


class Pickled:
    """Any class: torch.save pickles it, and weights_only loading must refuse it."""

    def __reduce__(self) -> Any:
        return (os.getcwd, ())


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def make_hostile_world(root: Path) -> dict[str, Path]:
    """A trained run plus every damaged variant the hostile tests point the commands at."""
    run = train_tiny_run(root / "run")
    last = run / "checkpoints" / "last.ckpt"
    files = root / "files"
    files.mkdir()
    paths = {"root": root, "run": run, "last": last, "files": files}

    paths["tampered"] = files / "tampered.ckpt"
    shutil.copy(last, paths["tampered"])
    flip_tensor_bytes(paths["tampered"])
    paths["pwned"] = root / "pwned"
    paths["hostile"] = resave(
        last, files / "hostile.ckpt", with_target("builtins.open", [str(paths["pwned"]), "w"])
    )
    paths["pickle"] = files / "pickle.ckpt"
    torch.save({"state_dict": {}, "evil": Pickled()}, paths["pickle"])
    paths["text"] = files / "text.ckpt"
    paths["text"].write_text("not a checkpoint\n")

    wide = compose_train_config([*TINY_MLP_GAN, "model.generator.width=48"], root / "unused").model
    wide_state = hydra.utils.instantiate(wide).state_dict()
    paths["other_arch"] = resave(
        last, files / "other_arch.ckpt", lambda c: c.update(state_dict=wide_state)
    )

    broken = root / "broken_run" / "checkpoints"
    broken.mkdir(parents=True)
    (broken / "last.ckpt").write_bytes(b"\0" * 100)
    shutil.copy(paths["tampered"], broken / "step_0000001.ckpt")
    paths["broken_run"] = broken.parent

    paths["locked"] = root / "locked"
    shutil.copytree(run / "checkpoints", paths["locked"] / "checkpoints")
    lock = {"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}
    lock["process_start"] = process_start_time(os.getpid())
    (paths["locked"] / LOCK_NAME).write_text(json.dumps(lock))

    paths["afile"] = root / "afile"
    paths["afile"].write_text("a file, not a folder\n")
    grey = np.full((16, 16), 128, np.uint8)
    for i in range(4):
        write_png(root / "tiny_folder" / f"{i}.png", grey)
    paths["tiny_folder"] = root / "tiny_folder"
    for i in range(20):
        write_png(root / "corrupt_folder" / f"{i}.png", grey)
    # not an image at all (a damaged PNG makes libpng print a line of its own on stderr)
    (root / "corrupt_folder" / "broken.png").write_bytes(b"garbage" * 10)
    paths["corrupt_folder"] = root / "corrupt_folder"
    return paths


def snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every file (size, mtime) and folder (None) below ``root``."""
    state: dict[str, tuple[int, int] | None] = {}
    for path in root.rglob("*"):
        rel = str(path.relative_to(root))
        state[rel] = None if path.is_dir() else (path.stat().st_size, path.stat().st_mtime_ns)
    return state
