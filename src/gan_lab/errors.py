"""Errors that mean "the user asked for something wrong", printed as one line, no traceback."""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
E = TypeVar("E", bound=BaseException)


class UserError(ValueError):
    """A mistake in the configuration or the environment that the user can fix."""


class ConfigError(UserError):
    """A composed config value is invalid. The message names the key, the value and the fix."""

    def __init__(self, key: str, value: object, expected: str) -> None:
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"{key}={value!r} is invalid: {expected}")


class RunFailure(RuntimeError):
    """The environment failed mid-run (disk full, device lost): one line naming the cause, exit 1."""


class DataNotFoundError(UserError):
    """A dataset is missing and could not be downloaded."""


def find_cause(exc: BaseException, kind: type[E]) -> E | None:
    """Walk the cause chain (Hydra wraps constructor errors) to the first ``kind`` error, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def find_user_error(exc: BaseException) -> UserError | None:
    """The user's mistake behind ``exc``, if any."""
    return find_cause(exc, UserError)


# OS errors that mean "the machine failed", not "the code is wrong": reported in one line
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)
# what PyTorch raises when a GPU is lost or faults (not an out-of-memory: that is a batch size)
DEVICE_FAILURES = ("CUDA error:", "CUDA driver error", "NCCL error", "HIP error:")


def find_run_failure(exc: BaseException) -> RunFailure | None:
    """A :class:`RunFailure`, or a full/read-only/failing disk, anywhere in the cause chain."""
    current: BaseException | None = exc
    for _ in range(20):  # Lightning re-raises inside its own handlers: a short chain
        if current is None or isinstance(current, RunFailure):
            return current
        if isinstance(current, OSError) and current.errno in DISK_ERRNOS:
            where = f" writing {current.filename}" if current.filename else ""
            return RunFailure(f"{os.strerror(current.errno)}{where}")
        text = str(current).strip()
        if isinstance(current, RuntimeError) and text.startswith(DEVICE_FAILURES):
            return RunFailure(
                f"the accelerator failed: {text.splitlines()[0][:300]}; resume from the last "
                "checkpoint with ckpt_path=last"
            )
        current = current.__cause__ or current.__context__
    return None


def run_cli(prog: str, task: Callable[[Any], Any], cfg: Any, log_error: bool = True) -> Any:
    """User mistakes become one line on stderr and exit code 2, not a traceback; a failure of
    the environment mid-run (:class:`RunFailure`) one line and exit code 1."""
    try:
        return task(cfg)
    except Exception as exc:
        user_error = find_user_error(exc)
        if user_error is None:
            failure = find_run_failure(exc)
            if failure is None:
                raise
            log.error("%s", failure)
            print(f"{prog}: error: {failure}", file=sys.stderr)
            raise SystemExit(1) from None
        if log_error:  # into the run's log file (before Hydra set it up: only to the console)
            log.error("%s", user_error)
        print(f"{prog}: error: {user_error}", file=sys.stderr)
        raise SystemExit(2) from None
