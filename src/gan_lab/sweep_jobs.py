"""A multirun job that fails is recorded, not raised: the other jobs of the sweep still run.

Hydra's basic sweeper re-raises the first failed job's exception after launching a batch, which
ends the whole multirun (and no summary is written). In a multirun, ``gan-train``'s task
therefore catches the job's error, writes ``job_status.json`` (status and a one-line reason)
into the job's directory, prints the line, and returns NaN as the objective: Optuna records a
NaN as a failed trial and goes on. The sweep summary reads the status file (sweep_summary.py).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gan_lab.atomic_write import write_text_atomically
from gan_lab.distributed import is_rank_zero
from gan_lab.errors import find_run_failure, find_user_error

log = logging.getLogger(__name__)

STATUS_FILE = "job_status.json"


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def one_line_reason(err: BaseException) -> str:
    """The user's mistake or the environment's failure; else the exception's first line."""
    known = find_user_error(err) or find_run_failure(err)
    if known is not None:
        return str(known)
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}"[:500]


def write_status(output_dir: Path, status: str, reason: str | None = None) -> None:
    if not is_rank_zero():
        return
    text = json.dumps({"status": status, "reason": reason}, indent=2) + "\n"
    write_text_atomically(output_dir / STATUS_FILE, text)


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The job's recorded status, None when it recorded none; unreadable files say so."""
    path = run_dir / STATUS_FILE
    if not path.is_file():
        return None
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return {"status": "unreadable", "reason": f"{STATUS_FILE}: {err}"}
    return status if isinstance(status, dict) else {"status": "unreadable", "reason": STATUS_FILE}


def run_recorded(
    prog: str, task: Callable[[Any], Any], cfg: Any, output_dir: Path, on_failure: Any
) -> Any:
    """``task(cfg)``; on failure the job is recorded as failed and ``on_failure`` returned.

    A stop signal (exit 143) or Ctrl+C still ends the sweep: the user asked for that.
    """
    try:
        result = task(cfg)
    except Exception as err:
        reason = one_line_reason(err)
        if find_user_error(err) is None and find_run_failure(err) is None:
            log.exception("job failed")  # an unexpected error: the traceback goes to the job log
        else:
            log.error("job failed: %s", reason)
        write_status(output_dir, "failed", reason)
        print(f"{prog}: job {output_dir.name} failed: {reason}", file=sys.stderr)
        return on_failure
    write_status(output_dir, "ok")
    return result
