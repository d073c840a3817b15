"""One run per run directory: a concurrent second run is refused, stale locks are cleared."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gan_lab.checkpoint_io import CheckpointError, resolve_resume_path
from gan_lab.run_lock import LOCK_NAME, RunDirInUse, RunLock, process_start_time
from tests.forked_cli import run_forked
from tests.hostile_fixtures import TRAIN_ARGS


def write_lock(run_dir: Path, **owner: object) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    path.write_text(json.dumps({"host": socket.gethostname(), "started": "earlier", **owner}))
    return path


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_second_run_into_a_directory_in_use_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "gan_lab.train", *TRAIN_ARGS, "trainer.max_steps=100000",
         f"hydra.run.dir={run_dir}", "ckpt_path=auto"],
        cwd=tmp_path, env={**os.environ, "GAN_LAB_ROOT": str(tmp_path), "PYTHONWARNINGS": "ignore"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 400
        while not list(run_dir.glob("tensorboard/events.out.tfevents.*")):  # it is training
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.5)
        before = sorted(p.name for p in run_dir.rglob("*") if p.name != LOCK_NAME)
        second = run_forked("train", [*TRAIN_ARGS, f"hydra.run.dir={run_dir}", "ckpt_path=auto"], tmp_path)  # fmt: skip
        assert second.returncode == 2, second.stderr[-2000:]
        assert second.stderr.strip().splitlines() == [
            f"gan-train: error: run directory {run_dir} is in use by pid {first.pid} on "
            f"{socket.gethostname()} ({second.stderr.split('(', 1)[1].split(')')[0]}); wait for it, "
            f"choose another hydra.run.dir, or delete {run_dir / LOCK_NAME} if that process is gone"
        ]
        # the refused run wrote nothing: no .hydra of its own, no -v1 checkpoints
        after = sorted(p.name for p in run_dir.rglob("*") if p.name != LOCK_NAME)
        assert set(after) >= set(before) and not any("-v1" in n for n in after)
    finally:
        first.send_signal(signal.SIGTERM)  # ends with a resumable last.ckpt
        first.wait(timeout=120)
    assert first.returncode == 143
    assert not (run_dir / LOCK_NAME).exists()  # released when the owner exits
    names = [p.name for p in (run_dir / "checkpoints").iterdir()]
    assert "last.ckpt" in names and not any("-v" in n for n in names), names  # one run's set


def test_a_lock_of_a_dead_process_is_stale_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_lock(tmp_path, pid=dead_pid(), process_start=1.0)
    lock = RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert "no longer runs" in caplog.text
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_reused_pid_is_recognised_by_its_start_time(tmp_path: Path) -> None:
    start = process_start_time(os.getpid())
    assert start is not None
    write_lock(tmp_path, pid=os.getpid(), process_start=start - 100.0)  # same pid, older process
    RunLock(tmp_path).acquire().release()


def test_a_live_owner_or_another_host_keeps_the_lock(tmp_path: Path) -> None:
    write_lock(tmp_path, pid=os.getpid(), process_start=process_start_time(os.getpid()))
    with pytest.raises(RunDirInUse, match=f"in use by pid {os.getpid()}"):
        RunLock(tmp_path).acquire()
    write_lock(tmp_path, pid=dead_pid(), host="another-node")  # cannot be checked from here
    with pytest.raises(RunDirInUse, match="on another-node"):
        RunLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).exists()  # never removed by a process that does not own it


def test_auto_never_starts_over_a_directory_whose_checkpoints_all_fail(tmp_path: Path) -> None:
    assert resolve_resume_path("auto", tmp_path) is None  # nothing there: a new run
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"torn")
    with pytest.raises(CheckpointError, match=r"none of the 1 checkpoints .* loads"):
        resolve_resume_path("auto", tmp_path)
