"""Run a command's real entry point (`gan_lab.train:main` ...) in a forked child process.

A fresh `python -m gan_lab.train` costs 10-20 s of imports on a busy 2-core machine; a fork of
the test process, which imported torch, Lightning and Hydra once, starts in milliseconds and
runs the same `main()` with its own argv, cwd, environment, stdout/stderr and exit code. The
hostile-input tests use it for their many cases; a few run through real subprocesses too.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gan_lab.eval
import gan_lab.sample
import gan_lab.train

ENTRY_POINTS = {
    "train": gan_lab.train.main,
    "eval": gan_lab.eval.main,
    "sample": gan_lab.sample.main,
}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _child(
    command: str, args: list[str], cwd: Path, env: dict[str, str], out: Path, err: Path
) -> None:
    import torch
    from hydra.core.global_hydra import GlobalHydra

    torch.set_num_threads(1)  # OpenMP pools do not survive a fork; one thread needs none
    os.chdir(cwd)
    os.environ.update({"GAN_LAB_ROOT": str(cwd), "PYTHONWARNINGS": "ignore", **env})
    os.environ.pop("HYDRA_FULL_ERROR", None)
    stdout, stderr = open(out, "w", buffering=1), open(err, "w", buffering=1)  # noqa: SIM115
    os.dup2(stdout.fileno(), 1)
    os.dup2(stderr.fileno(), 2)
    sys.stdout, sys.stderr = stdout, stderr
    GlobalHydra.instance().clear()
    sys.argv = [f"gan-{command}", *args]
    ENTRY_POINTS[command]()


def run_forked(
    command: str, args: list[str], cwd: Path, timeout: float = 300, **env: str
) -> Result:
    """``gan-<command> <args>`` in a forked process with logs/ under ``cwd``."""
    out, err = (
        Path(tempfile.mkstemp(prefix=f"gan-{command}.", suffix=s)[1]) for s in ("out", "err")
    )
    cwd.mkdir(parents=True, exist_ok=True)
    process = multiprocessing.get_context("fork").Process(
        target=_child, args=(command, list(args), cwd, env, out, err)
    )
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
        raise TimeoutError(f"gan-{command} {' '.join(args)} ran longer than {timeout} s")
    result = Result(int(process.exitcode), out.read_text(), err.read_text())
    out.unlink()
    err.unlink()
    return result
