"""After a Hydra multirun: one table of every run's overrides and final metrics.

Writes into the sweep directory

- ``summary.csv``: one row per run, all overrides and all final scalar metrics;
- ``summary.md``: the same runs as a Markdown table, only the overrides that differ between
  runs and the main metrics, best run first;
- ``tensorboard/``: a parent logdir with one entry per run (a relative link to the run's
  ``tensorboard/`` folder, named after its overrides), so ``tensorboard --logdir <sweep>/tensorboard``
  shows all runs side by side under readable names.

Rows are sorted by the optimised metric (``optimized_metric`` of the sweep's config; Optuna's
``direction`` when the sweep used Optuna, else lower is better); runs without it come next, and
failed jobs (their ``job_status.json``, see sweep_jobs.py) or jobs with unreadable files last,
marked in the ``status`` column. Folders that are not gan-train runs are skipped.
Final metrics come from the ``metrics.json`` that ``gan-train`` writes at the end of every run.
Runs either by hand (``gan-sweep-summary <sweep dir>``) or automatically after every multirun
(the Hydra callback configured in ``configs/hydra/default.yaml``).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from gan_lab.atomic_write import write_text_atomically
from gan_lab.distributed import is_rank_zero
from gan_lab.errors import UserError
from gan_lab.optuna_study import study_sweep_dirs
from gan_lab.sweep_runs import METRICS_FILE, RunRecord, collect_runs

log = logging.getLogger(__name__)

DIRECTIONS = ("minimize", "maximize")
# The Markdown table keeps to these (the CSV has every metric): quality numbers and the basics.
MARKDOWN_METRIC_PREFIXES = ("metrics/", "sweep/")
MARKDOWN_METRICS = ("g_step", "loss/d", "loss/g", "D(x)", "D(G(z))")


def write_run_metrics(metrics: dict[str, Any], output_dir: Path) -> None:
    """Keep a run's final scalars (and a few named facts, e.g. ``best_metric``) next to its
    config (rank 0 only: one writer per run)."""
    if not is_rank_zero():
        return
    write_text_atomically(
        output_dir / METRICS_FILE, json.dumps(metrics, indent=2, sort_keys=True) + "\n"
    )


@dataclass
class SweepSummary:
    runs: list[RunRecord]
    metric: str | None
    direction: str
    csv_path: Path
    markdown_path: Path
    tensorboard_dir: Path


def settings_of(cfg: DictConfig) -> tuple[str | None, str]:
    """(optimised metric, direction) of a composed config; Optuna's direction, else minimize."""
    metric = OmegaConf.select(cfg, "optimized_metric", default=None)
    direction = OmegaConf.select(cfg, "hydra.sweeper.direction", default=None)
    direction = str(direction).lower() if isinstance(direction, str) else "minimize"
    return metric, direction if direction in DIRECTIONS else "minimize"


def sweep_settings(sweep_dir: Path) -> tuple[str | None, str]:
    """From the sweep's ``multirun.yaml`` (basic sweeper) or its first job's saved config (Optuna)."""
    if (sweep_dir / "multirun.yaml").is_file():
        return settings_of(OmegaConf.load(sweep_dir / "multirun.yaml"))
    for job_config in sorted(sweep_dir.glob("*/.hydra/config.yaml")):
        cfg = OmegaConf.load(job_config)
        hydra_file = job_config.with_name("hydra.yaml")
        if hydra_file.is_file():
            cfg = OmegaConf.merge(cfg, OmegaConf.load(hydra_file))
        return settings_of(cfg)
    return None, "minimize"


def sort_runs(runs: list[RunRecord], metric: str | None, direction: str) -> list[RunRecord]:
    """Best first; runs without a finite value of ``metric`` keep job order at the end."""
    if metric is None:
        return sorted(runs, key=lambda run: run.failed)  # stable: job order, failed jobs last
    sign = -1.0 if direction == "maximize" else 1.0

    def key(run: RunRecord) -> tuple[int, float]:
        if run.failed:
            return (2, 0.0)  # failed and unreadable jobs last, in job order
        value = run.metrics.get(metric)
        if value is None or math.isnan(value):
            return (1, 0.0)
        return (0, sign * value)

    return sorted(runs, key=key)


def varying_keys(runs: Sequence[RunRecord]) -> list[str]:
    keys = sorted({k for run in runs for k in run.overrides})
    return [k for k in keys if len({run.overrides.get(k) for run in runs}) > 1]


def _metric_columns(runs: Sequence[RunRecord], metric: str | None) -> list[str]:
    names = sorted({k for run in runs for k in run.metrics})
    return ([metric] if metric else []) + [n for n in names if n != metric]


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def write_csv(runs: Sequence[RunRecord], metric: str | None, path: Path) -> None:
    override_keys = sorted({k for run in runs for k in run.overrides})
    metric_keys = _metric_columns(runs, metric)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rank", "job", "status", *override_keys, *metric_keys])
        for i, run in enumerate(runs, 1):
            writer.writerow(
                [i, run.job, run.status]
                + [run.overrides.get(k, "") for k in override_keys]
                + [_fmt(run.metrics.get(k)) for k in metric_keys]
            )


def markdown_table(runs: Sequence[RunRecord], metric: str | None, direction: str) -> str:
    keys = varying_keys(runs)
    metric_keys = [
        k
        for k in _metric_columns(runs, metric)
        if k == metric or k in MARKDOWN_METRICS or k.startswith(MARKDOWN_METRIC_PREFIXES)
    ]
    common = sorted({f"{k}={v}" for run in runs for k, v in run.overrides.items() if k not in keys})
    header = ["rank", "job", "status", *keys, *metric_keys]
    lines = [
        f"Sorted by `{metric}` ({direction})." if metric else "No optimised metric: job order.",
        f"Common overrides: `{' '.join(common)}`" if common else "Common overrides: none",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for i, run in enumerate(runs, 1):
        status = "ok" if run.status == "ok" else _short(run.status[:100])
        cells = [str(i), run.job, status, *(_short(run.overrides.get(k, "")) for k in keys)]
        cells += [_fmt(run.metrics.get(k)) if run.metrics else "-" for k in metric_keys]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _short(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.4g}" if len(value) > 8 else value


def run_label(run: RunRecord, keys: Sequence[str]) -> str:
    """A folder name for TensorBoard: job number plus the overrides that differ between runs."""
    dotted = {k: k.replace("/", ".").split(".") for k in keys}
    counts = Counter(parts[-1] for parts in dotted.values())  # optimizer_g.lr, optimizer_d.lr
    names = {
        k: ".".join(parts[-2:] if counts[parts[-1]] > 1 else parts[-1:])
        for k, parts in dotted.items()
    }
    parts = [f"{names[k]}={_short(run.overrides[k])}" for k in keys if k in run.overrides]
    return re.sub(r"[^A-Za-z0-9_.,=+-]+", "_", "_".join([run.job, *parts]))[:120]


def link_tensorboard(runs: Sequence[RunRecord], parent: Path) -> None:
    """Fill ``parent`` with one relative link per run's ``tensorboard/`` folder (a copy where links fail)."""
    if parent.exists():
        shutil.rmtree(parent)
    parent.mkdir(parents=True)
    keys = varying_keys(runs)
    for run in runs:
        source = run.path / "tensorboard"
        if not source.is_dir():
            continue
        target = parent / run_label(run, keys)
        try:
            target.symlink_to(os.path.relpath(source, parent), target_is_directory=True)
        except OSError:
            shutil.copytree(source, target)


def summarize(
    sweep_dir: Path | str, metric: str | None = None, direction: str | None = None
) -> SweepSummary:
    """Write ``summary.csv``, ``summary.md`` and ``tensorboard/`` into ``sweep_dir``."""
    sweep_dir = Path(sweep_dir)
    # a continued Optuna study: the runs of every session (optuna_study.py)
    runs = [run for d in study_sweep_dirs(sweep_dir) for run in collect_runs(d)]
    if not runs:
        raise UserError(
            f"{sweep_dir} holds no Hydra jobs (no */.hydra/overrides.yaml); pass a multirun directory"
        )
    default_metric, default_direction = sweep_settings(sweep_dir)
    metric = metric or default_metric
    direction = direction or default_direction
    if direction not in DIRECTIONS:
        raise UserError(f"direction={direction!r} is invalid: choose minimize or maximize")
    runs = sort_runs(runs, metric, direction)
    summary = SweepSummary(
        runs,
        metric,
        direction,
        sweep_dir / "summary.csv",
        sweep_dir / "summary.md",
        sweep_dir / "tensorboard",
    )
    write_csv(runs, metric, summary.csv_path)
    summary.markdown_path.write_text(
        f"# Sweep {sweep_dir.name}\n\n" + markdown_table(runs, metric, direction)
    )
    link_tensorboard(runs, summary.tensorboard_dir)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``gan-sweep-summary <sweep dir> [--metric NAME] [--maximize]``"""
    parser = argparse.ArgumentParser(prog="gan-sweep-summary", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "sweep_dir", type=Path, help="a multirun directory, e.g. logs/train/multiruns/<date>"
    )
    parser.add_argument(
        "--metric", help="sort by this metric (default: the sweep's optimized_metric)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--maximize", dest="direction", action="store_const", const="maximize")
    group.add_argument("--minimize", dest="direction", action="store_const", const="minimize")
    args = parser.parse_args(argv)
    try:
        summary = summarize(args.sweep_dir, args.metric, args.direction)
    except UserError as err:
        print(f"gan-sweep-summary: error: {err}", file=sys.stderr)
        return 2
    for run in summary.runs:
        if run.failed:
            print(f"gan-sweep-summary: job {run.job} {run.status}", file=sys.stderr)
    print(summary.markdown_path.read_text())
    print(
        f"wrote {summary.csv_path}, {summary.markdown_path}; tensorboard --logdir {summary.tensorboard_dir}"
    )
    return 0


@dataclass(frozen=True)
class SweepOutcome:
    """What the last multirun of this process left: its failed jobs, for the exit code."""

    failed_jobs: tuple[str, ...]
    n_jobs: int
    summary_path: Path


_LAST_OUTCOME: list[SweepOutcome] = []  # set by the callback, taken by the command (one process)


def take_sweep_outcome() -> SweepOutcome | None:
    """The outcome recorded by the last multirun's summary callback, once (then cleared)."""
    return _LAST_OUTCOME.pop() if _LAST_OUTCOME else None


class SweepSummaryCallback(Callback):
    """Hydra callback: writes the summary when a multirun ends (any sweeper, any launcher), and
    records which jobs failed so that ``gan-train -m`` can exit non-zero (train.py)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        _LAST_OUTCOME.clear()
        try:
            summary = summarize(sweep_dir, *settings_of(config))
        except UserError as err:
            log.warning("no sweep summary: %s", err)
            return
        log.info(
            "sweep summary: %s (tensorboard --logdir %s)",
            summary.markdown_path,
            summary.tensorboard_dir,
        )
        failed = [run.job for run in summary.runs if run.failed]
        _LAST_OUTCOME.append(SweepOutcome(tuple(failed), len(summary.runs), summary.markdown_path))
        if failed:
            log.warning(
                "%d of %d jobs failed (%s): see their status in %s",
                len(failed),
                len(summary.runs),
                ", ".join(failed),
                summary.markdown_path,
            )
