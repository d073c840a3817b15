"""One training process per run directory: a lock file that names its owner.

Two runs started into one directory would interleave their checkpoints (``last-v1.ckpt``, one
run's step checkpoint overwritten by the other's). ``gan-train`` therefore creates
``<run dir>/.run.lock`` with ``O_CREAT | O_EXCL`` (atomic on local and NFSv3+ file systems)
holding the owner's pid, host and process start time, and removes it when the process ends.
A lock whose owner is gone (same host, the pid no longer runs, or runs a different process that
reused the pid) is stale: it is reported and replaced. A lock of another host cannot be checked
and is refused; the message says how to clear it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from gan_lab.errors import UserError

log = logging.getLogger(__name__)

LOCK_NAME = ".run.lock"


class RunDirInUse(UserError):
    """Another live process trains into this run directory."""


def process_start_time(pid: int) -> float | None:
    """Seconds since boot at which ``pid`` started (Linux /proc), None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime in clock ticks


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def _owner() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "process_start": process_start_time(os.getpid()),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def stale_reason(owner: dict[str, Any]) -> str | None:
    """Why the lock's owner is gone, or None while it may still run."""
    if owner.get("host") != socket.gethostname():
        return None
    pid = owner.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return f"pid {pid} no longer runs"
    recorded, now = owner.get("process_start"), process_start_time(pid)
    if recorded is not None and now is not None and abs(now - recorded) > 0.05:
        return f"pid {pid} now belongs to another process"
    return None


def _read_owner(path: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # half-written or garbage: its writer died between create and write
    return owner if isinstance(owner, dict) else {}


class RunLock:
    """``acquire()`` or :class:`RunDirInUse`; ``release()`` (also at exit) removes our lock only."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.held = False

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # create, or clear a stale lock and create again
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._clear_if_stale()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(_owner(), f)
            self.held = True
            atexit.register(self.release)
            return self
        raise RunDirInUse(f"cannot lock {self.path}: it keeps reappearing; another run is starting")

    def _clear_if_stale(self) -> None:
        owner = _read_owner(self.path)
        if owner is None:
            return  # released meanwhile: try again
        if owner == {}:
            age = time.time() - self.path.stat().st_mtime if self.path.exists() else 0.0
            if age < 5.0:  # its writer may still be writing the owner
                time.sleep(0.2)
                return
            reason = "it names no owner"
        else:
            reason = stale_reason(owner)
        if reason is None:
            raise RunDirInUse(
                f"run directory {self.path.parent} is in use by pid {owner.get('pid')} on "
                f"{owner.get('host')} (started {owner.get('started')}); wait for it, choose another "
                f"hydra.run.dir, or delete {self.path} if that process is gone"
            )
        log.warning("removing the stale lock %s (%s)", self.path, reason)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        owner = _read_owner(self.path)
        if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


_HELD: dict[Path, RunLock] = {}


def hold_run_dir(run_dir: Path) -> RunLock:
    """This process's lock of ``run_dir``, taken once (the preflight and the task share it)."""
    key = Path(run_dir).resolve()
    if key not in _HELD or not _HELD[key].held:
        _HELD[key] = RunLock(key).acquire()
    return _HELD[key]


def release_run_dir(run_dir: Path) -> None:
    lock = _HELD.pop(Path(run_dir).resolve(), None)
    if lock is not None:
        lock.release()
