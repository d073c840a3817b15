"""The jobs of a sweep directory as records: overrides, final metrics, status.

A job directory holds ``.hydra/overrides.yaml`` (Hydra), ``metrics.json`` (gan-train, at the
end of a run) and ``job_status.json`` (sweep_jobs.py, ok or failed with a reason). Folders of
other commands are skipped; files that cannot be read make the job "unreadable", never a crash.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gan_lab.sweep_jobs import read_status

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


@dataclass
class RunRecord:
    job: str
    path: Path
    overrides: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    # "failed: <reason>" / "unreadable: <reason>" when the job recorded or left one
    problem: str | None = None

    @property
    def status(self) -> str:
        if self.problem:
            return self.problem
        return "ok" if self.metrics else "no metrics (unfinished)"

    @property
    def failed(self) -> bool:
        return self.problem is not None


def _split_override(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    return key.lstrip("+"), value  # "~key" (a deletion) stays recognisable


def _job_sort_key(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (10**9, path.name)


OTHER_COMMANDS = ("eval", "sample")  # task_name of gan-eval / gan-sample run directories


def is_training_run(run_dir: Path) -> bool:
    """Not the run directory of another command (a gan-eval run saved inside the sweep)."""
    try:
        cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    except Exception:
        return True  # missing (killed before Hydra saved it) or unreadable: kept and reported
    return not (isinstance(cfg, DictConfig) and cfg.get("task_name") in OTHER_COMMANDS)


def read_run(run_dir: Path) -> RunRecord:
    """One job: overrides, final metrics, recorded status; unreadable files become its status."""
    overrides: dict[str, str] = {}
    problem = None
    try:
        overrides = dict(
            _split_override(str(o)) for o in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
        )
    except Exception as err:
        problem = f"unreadable: .hydra/overrides.yaml ({type(err).__name__})"
    try:
        OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    except FileNotFoundError:
        pass
    except Exception as err:
        problem = f"unreadable: .hydra/config.yaml ({type(err).__name__})"
    metrics: dict[str, float] = {}
    metrics_file = run_dir / METRICS_FILE
    if metrics_file.is_file():
        try:
            loaded = json.loads(metrics_file.read_text())
            # the numbers; named facts such as best_metric / best_ckpt are not table columns
            metrics = {
                str(k): float(v)
                for k, v in loaded.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
        except (OSError, ValueError, TypeError, AttributeError) as err:
            problem = f"unreadable: {METRICS_FILE} ({type(err).__name__}: {str(err)[:80]})"
    status = read_status(run_dir)
    if status is not None and status.get("status") != "ok":
        problem = f"{status.get('status')}: {status.get('reason')}"
    return RunRecord(run_dir.name, run_dir, overrides, metrics, problem)


def collect_runs(sweep_dir: Path) -> list[RunRecord]:
    """Every training job of the sweep (folders holding ``.hydra/overrides.yaml``), in job order.

    Folders of other commands (a gan-eval run saved inside the sweep) are skipped.
    """
    runs = []
    for overrides_file in sorted(
        sweep_dir.glob("*/.hydra/overrides.yaml"), key=lambda p: _job_sort_key(p.parents[1])
    ):
        run_dir = overrides_file.parents[1]
        if not is_training_run(run_dir):
            log.info("sweep summary: skipping %s (not a gan-train run)", run_dir)
            continue
        record = read_run(run_dir)
        if record.problem and record.problem.startswith("unreadable"):
            log.warning("sweep summary: job %s is %s", record.job, record.problem)
        runs.append(record)
    return runs
