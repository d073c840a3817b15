"""Pre-emption: SIGTERM / SIGINT / SIGUSR1 end a run with a resumable checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import gan_lab.train as train_module
from gan_lab.checkpoint_io import read_checkpoint
from tests.conftest import FAST_OVERRIDES, TINY_MLP_GAN, compose_train_config
from tests.test_resume import SignalAtStep

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

TINY = (
    *TINY_MLP_GAN,
    "~callbacks.health_monitor",
)
TRAINING_STARTED = "SIGTERM, SIGINT or SIGUSR1 saves a resumable checkpoint"


def start_gan_train(run_dir: Path, log_file: Path, *overrides: str) -> subprocess.Popen:
    """`gan-train` as a separate process (as a cluster runs it), output into ``log_file``."""
    args = [*FAST_OVERRIDES, *TINY, f"hydra.run.dir={run_dir}", *overrides]
    env = {**os.environ, "GAN_LAB_ROOT": str(run_dir.parent), "OMP_NUM_THREADS": "1"}
    with open(log_file, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gan_lab.train", *args], stdout=out, stderr=out, env=env
        )


def wait_until(
    proc: subprocess.Popen,
    log_file: Path,
    ready: Callable[[], bool],
    what: str,
    timeout: float = 120.0,
    interval: float = 0.05,
) -> None:
    """Poll ``ready`` until it holds; fail with the log if gan-train exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"gan-train exited early ({proc.returncode}):\n{log_file.read_text()[-3000:]}"
            )
        time.sleep(interval)
    proc.kill()
    raise AssertionError(f"{what}:\n{log_file.read_text()[-3000:]}")


def wait_for_text(
    proc: subprocess.Popen, log_file: Path, text: str, timeout: float = 120.0
) -> None:
    wait_until(
        proc,
        log_file,
        lambda: text in log_file.read_text(),
        f"gan-train never printed {text!r}",
        timeout,
    )


def test_sigterm_to_a_running_gan_train_leaves_a_checkpoint_that_resumes_to_the_end(
    tmp_path: Path,
) -> None:
    run_dir, log_file = tmp_path / "run", tmp_path / "first.log"
    proc = start_gan_train(run_dir, log_file, "trainer.max_steps=100000")
    wait_for_text(proc, log_file, TRAINING_STARTED)
    time.sleep(0.5)  # some steps
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == train_module.PREEMPTED_EXIT_CODE, log_file.read_text()[-3000:]
    assert "ckpt_path=last" in log_file.read_text()  # the console says how to resume
    assert "Traceback" not in log_file.read_text()
    saved = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert saved["global_step"] > 0

    # resume in this process (the CLI path of ckpt_path=last is the same train() call)
    target = saved["global_step"] + 3
    resume = compose_train_config([*TINY, f"trainer.max_steps={target}", "ckpt_path=last"], run_dir)
    train_module.train(resume)
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == target


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGUSR1])
def test_sigint_and_slurm_signal_save_the_step_they_arrive_in_and_stop(
    tmp_path: Path, signum: int
) -> None:
    handlers_before = {
        s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGUSR1, signal.SIGTERM)
    }
    cfg = compose_train_config([*TINY, "trainer.max_steps=50"], tmp_path / "run")
    original = train_module.instantiate_callbacks
    train_module.instantiate_callbacks = lambda c: [*original(c), SignalAtStep(3, signum)]
    try:
        with pytest.raises(SystemExit) as stopped:
            train_module.train(cfg)
    finally:
        train_module.instantiate_callbacks = original
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 3
    assert stopped.value.code in (train_module.PREEMPTED_EXIT_CODE, 1)  # 1: Lightning's Ctrl+C exit
    assert {
        s: signal.getsignal(s) for s in handlers_before
    } == handlers_before  # handlers given back
