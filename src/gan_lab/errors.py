"""Errors that mean "the user asked for something wrong", printed as one line, no traceback."""

from __future__ import annotations

import logging
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


def run_cli(prog: str, task: Callable[[Any], Any], cfg: Any) -> Any:
    """User mistakes become one line on stderr and exit code 2, not a traceback."""
    try:
        return task(cfg)
    except Exception as exc:
        user_error = find_user_error(exc)
        if user_error is None:
            raise
        log.error("%s", user_error)
        print(f"{prog}: error: {user_error}", file=sys.stderr)
        raise SystemExit(2) from None
