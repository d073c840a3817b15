"""Hydra's composition errors (unknown option, key or group) as one line with the nearest names.

Hydra prints these as several lines (plus its search path) and exits with 1; the project's
convention for "you asked for something wrong" is one line and exit code 2. The entry points
run Hydra with ``HYDRA_FULL_ERROR=1`` so the exception reaches :func:`run_hydra_entry`, which
rewrites the three composition errors; every other exception propagates unchanged. A user who
sets ``HYDRA_FULL_ERROR=1`` gets Hydra's full text, as Hydra documents.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

COMPOSITION_ERRORS = (ConfigCompositionException, MissingConfigException, OverrideParseException)


def config_groups(config_dir: Path) -> list[str]:
    """Every config group (folder below the config dir) as ``model/generator``."""
    return sorted(
        str(p.relative_to(config_dir))
        for p in config_dir.rglob("*")
        if p.is_dir() and p.name[0] != "_"
    )


def _nearest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    return f"; nearest: {', '.join(close)}" if close else ""


def describe(err: BaseException, config_dir: Path) -> str:
    """One line: what was wrong, the valid names closest to it, and the fix."""
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        group, _, option = str(err.missing_cfg_file).rpartition("/")
        options = [str(o) for o in (err.options or [])]
        if not group:
            return f"config {option!r} does not exist{_nearest(option, options)}"
        return (
            f"{group}={option} is not an option of group {group}{_nearest(option, options)} "
            f"(choose one of {', '.join(options)})"
        )
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    match = re.search(r"Could not override '([^']+)'", first)
    if match:
        key = match.group(1)
        parent = getattr(err.__cause__, "parent_node", None)
        keys = [str(k) for k in parent] if hasattr(parent, "keys") else []
        leaf = re.split(r"[./]", key)[-1]
        near = _nearest(leaf, keys) if keys and "/" not in key else ""
        if not near and keys and "/" not in key:
            shown = sorted(keys)
            near = f"; the keys there: {', '.join(shown[:12])}" + (
                " ..." if len(shown) > 12 else ""
            )
        near = near or _nearest(key, config_groups(config_dir))
        return (
            f"{key} is not a key or config group of this config{near}; check the spelling, "
            f"or add a new key with +{key}=..."
        )
    match = re.search(r"An item is already at '([^']+)'", first)
    if match:
        return f"+{match.group(1)} adds a key that exists; override it with {match.group(1)}=..."
    if isinstance(err, OverrideParseException):
        return f"an override cannot be parsed: {first}"
    return first


def run_hydra_entry(prog: str, hydra_main: Callable[[], Any], config_dir: str) -> Any:
    """Call a ``@hydra.main`` function; composition errors become one line and exit code 2."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return hydra_main()
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        return hydra_main()
    except COMPOSITION_ERRORS as err:
        print(f"{prog}: error: {describe(err, Path(config_dir))}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)
