"""Crash safety and safe loading: atomic writes, SIGKILL at random moments, tampered files."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

import gan_lab.checkpoint_io as checkpoint_io
from gan_lab.checkpoint_io import (
    CheckpointError,
    atomic_torch_save,
    find_latest_good,
    read_checkpoint,
    resolve_resume_path,
)
from tests.test_signals import TRAINING_STARTED, start_gan_train, wait_for_text, wait_until

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def resumable(step: int) -> dict:
    """The shape of a Lightning training checkpoint, small."""
    return {
        "state_dict": {"generator.w": torch.full((64, 64), float(step))},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 2e-4, "params": [0]}]}],
        "loops": {"fit_loop": {}},
        "global_step": step,
    }


def write(path: Path, step: int, age_s: float = 0.0) -> Path:
    atomic_torch_save(resumable(step), path)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_checkpoint_gives_one_clear_line(tmp_path: Path) -> None:
    path = write(tmp_path / "last.ckpt", 5)
    truncate(path)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    assert "\n" not in str(err.value)
    assert "cannot be loaded safely" in str(
        err.value
    ) and "truncated, corrupted or tampered" in str(err.value)


class Payload:
    """A pickle that runs code when unpickled the unsafe way."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_tampered_checkpoint_never_runs_code(tmp_path: Path) -> None:
    marker, path = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hook": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="tampered"):
        read_checkpoint(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is live: an unsafe load would have run it
    assert marker.exists()


def test_weights_only_file_is_refused_for_resuming(tmp_path: Path) -> None:
    path = tmp_path / "weights.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="cannot resume training: it lacks optimizer_states"):
        resolve_resume_path(str(path), tmp_path)


def test_interrupted_write_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "last.ckpt", 1)

    def dies_half_way(obj: object, f: object) -> None:
        f.write(b"PK\x03\x04 half a zip")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_io.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save(resumable(2), path)
    monkeypatch.undo()
    assert read_checkpoint(path)["global_step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_latest_good_checkpoint_is_found_past_broken_ones(tmp_path: Path) -> None:
    run = tmp_path / "run"
    ckpts = run / "checkpoints"
    write(ckpts / "step_0000010.ckpt", 10, age_s=30)
    write(ckpts / "step_0000020.ckpt", 20, age_s=20)
    truncate(write(ckpts / "last.ckpt", 25, age_s=10))
    (ckpts / ".last.ckpt.abc.tmp").write_bytes(b"half")  # a write that was killed
    assert find_latest_good([ckpts]) == (ckpts / "step_0000020.ckpt").resolve()
    for mode in ("auto", "last"):
        assert Path(resolve_resume_path(mode, run) or "").name == "step_0000020.ckpt"

    empty = tmp_path / "fresh"
    assert resolve_resume_path("auto", empty) is None  # auto: first start of a run
    with pytest.raises(
        CheckpointError,
        match=r"ckpt_path=last: no loadable checkpoint.*ckpt_path=auto to start a new run",
    ):
        resolve_resume_path("last", empty)


def wait_for_new_checkpoint(proc, log_file: Path, last: Path, timeout: float = 120.0) -> None:
    """Until ``last`` is (re)written by this process: the kill then lands among checkpoint writes."""
    before = last.stat().st_mtime_ns if last.exists() else None
    wait_until(
        proc,
        log_file,
        lambda: last.exists() and last.stat().st_mtime_ns != before,
        "no checkpoint written",
        timeout,
        interval=0.01,
    )


def wait_for_temp_file(proc, folder: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(folder.glob(".*.tmp")):
            return
        time.sleep(0.001)


@pytest.mark.slow
def test_repeated_sigkill_never_leaves_an_unloadable_checkpoint(tmp_path: Path) -> None:
    """Kill `gan-train` 10 times at random moments while it checkpoints every step, then finish."""
    rng = random.Random(0)
    run_dir, steps = tmp_path / "run", 80
    last = run_dir / "checkpoints" / "last.ckpt"
    common = (
        f"trainer.max_steps={steps}",
        "callbacks.model_checkpoint.every_n_train_steps=1",
        # wider nets: checkpoints of a few MB take long enough to write that kills land inside writes
        "model.generator.width=256",
        "model.discriminator.width=512",
        "ckpt_path=auto",
    )
    progress, torn_writes = [], 0
    for kill in range(10):
        log_file = tmp_path / f"kill{kill}.log"
        proc = start_gan_train(run_dir, log_file, *common)
        wait_for_text(proc, log_file, TRAINING_STARTED)
        wait_for_new_checkpoint(proc, log_file, last)
        if kill % 2:  # the dangerous moment: a checkpoint is being written
            wait_for_temp_file(proc, run_dir / "checkpoints")
        else:
            time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        torn_writes += len(list((run_dir / "checkpoints").glob(".*.tmp")))
        for path in sorted((run_dir / "checkpoints").glob("*.ckpt")):  # every checkpoint loads
            checkpoint_io.check_resumable(read_checkpoint(path), path)
        latest = find_latest_good([run_dir / "checkpoints"])
        assert latest is not None
        progress.append(read_checkpoint(latest)["global_step"])
    assert progress == sorted(progress) and progress[-1] > 0, progress
    log_file = tmp_path / "final.log"
    proc = start_gan_train(run_dir, log_file, *common)
    assert proc.wait(timeout=300) == 0, log_file.read_text()[-3000:]
    assert read_checkpoint(last)["global_step"] == steps
    print(
        f"global step after each of the 10 kills: {progress}; kills inside a write: {torn_writes}"
    )
