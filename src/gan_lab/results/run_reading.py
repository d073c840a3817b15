"""What a run directory says about itself: checkpoints by kimg, wall time, in-training metrics.

Checkpoints are read with ``torch.load(weights_only=True, mmap=True)`` for their ``progress``
(g_step, kimg) and ``integrity`` digest only: no network is built. Wall time comes from the
TensorBoard event files: the ``g_step`` scalar's event times, summed over the run's event files
(one per process start), so the time between a kill and a resume does not count.
"""

from __future__ import annotations

import bisect
import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
import yaml

from gan_lab.checkpoint_io import checkpoint_candidates

log = logging.getLogger(__name__)

REACHED_TOLERANCE = 0.01  # a checkpoint within 1% of a budget counts as at the budget


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    g_step: int
    kimg: float
    digest: str  # the checkpoint's own SHA-256 of its contents (size+mtime for older files)


@dataclass(frozen=True)
class Pick:
    """The checkpoint of one budget, or why there is none."""

    budget_kimg: float
    checkpoint: CheckpointInfo | None
    max_kimg: float

    @property
    def reached(self) -> bool:
        return self.checkpoint is not None

    @property
    def short_of_budget(self) -> bool:
        """Reached, but the nearest checkpoint not over the budget is more than 1% under it."""
        c = self.checkpoint
        return c is not None and c.kimg < self.budget_kimg * (1 - REACHED_TOLERANCE)


def read_checkpoint_info(path: Path) -> CheckpointInfo | None:
    """Progress and digest of one checkpoint; None (with a warning) when it has no progress."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torn or foreign file: not a candidate
        log.warning("skipping unreadable checkpoint %s (%s)", path, str(err).splitlines()[0][:200])
        return None
    progress = blob.get("progress") if isinstance(blob, dict) else None
    if not isinstance(progress, dict) or "kimg" not in progress:
        log.warning("skipping %s: it stores no progress (kimg); written by an older gan-lab", path)
        return None
    integrity = blob.get("integrity") or {}
    stat = path.stat()
    digest = integrity.get("digest") or f"size{stat.st_size}-mtime{stat.st_mtime_ns}"
    return CheckpointInfo(path, int(progress["g_step"]), float(progress["kimg"]), str(digest))


def pick_checkpoint(checkpoints: list[CheckpointInfo], budget_kimg: float) -> Pick:
    """Closest to the budget without going over it (1% over is allowed); None if none reaches it."""
    max_kimg = max((c.kimg for c in checkpoints), default=0.0)
    if max_kimg < budget_kimg * (1 - REACHED_TOLERANCE):
        return Pick(budget_kimg, None, max_kimg)
    allowed = [c for c in checkpoints if c.kimg <= budget_kimg * (1 + REACHED_TOLERANCE)]
    if not allowed:  # the first checkpoint is already past the budget
        return Pick(budget_kimg, None, max_kimg)
    best = min(allowed, key=lambda c: (abs(c.kimg - budget_kimg), -c.g_step))
    return Pick(budget_kimg, best, max_kimg)


@dataclass
class Segment:
    """One process's TensorBoard event file: when it started, and (g_step, wall time) points."""

    start: float
    steps: list[float]
    walls: list[float]

    def seconds_to(self, g_step: float) -> float | None:
        """Seconds from the segment's start to ``g_step`` (interpolated); None if not reached."""
        i = bisect.bisect_left(self.steps, g_step)
        if i == len(self.steps):
            return None
        if i == 0 or self.steps[i] == g_step:
            return self.walls[i] - self.start
        s0, s1, w0, w1 = self.steps[i - 1], self.steps[i], self.walls[i - 1], self.walls[i]
        return w0 + (w1 - w0) * (g_step - s0) / (s1 - s0) - self.start


def seconds_to_step(segments: list[Segment], g_step: float) -> float | None:
    """Seconds of training until ``g_step``: whole earlier segments, then part of the one reaching it."""
    total = 0.0
    for segment in segments:
        reached = segment.seconds_to(g_step)
        if reached is not None:
            return total + reached
        total += segment.walls[-1] - segment.start if segment.walls else 0.0
    return None


class RunDir:
    """One run directory, read lazily (each part once)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @cached_property
    def checkpoints(self) -> list[CheckpointInfo]:
        """Periodic checkpoints and last.ckpt, one per g_step (best*.ckpt is chosen by a metric)."""
        by_step: dict[int, CheckpointInfo] = {}
        # the files a run could resume from: no best.ckpt, no temp files of interrupted writes
        for file in checkpoint_candidates([self.path / "checkpoints"]):
            info = read_checkpoint_info(file)
            if info is None:
                continue
            if info.g_step not in by_step or by_step[info.g_step].path.name == "last.ckpt":
                by_step[info.g_step] = info  # a step_*.ckpt is never overwritten: prefer it
        return sorted(by_step.values(), key=lambda c: c.g_step)

    @cached_property
    def machine(self) -> str | None:
        """The CPU the run recorded (``machine.json``, gan_lab/machine.py), with its torch threads."""
        file = self.path / "machine.json"
        try:
            record = json.loads(file.read_text())
        except (OSError, ValueError):
            return None
        gpus = f", GPUs: {', '.join(record['gpus'])}" if record.get("gpus") else ""
        return f"{record.get('cpu', 'unknown CPU')}, {record.get('torch_threads', '?')} torch threads{gpus}"

    @cached_property
    def config(self) -> dict[str, Any]:
        """config_resolved.yaml, else the run config stored in the newest checkpoint."""
        file = self.path / "config_resolved.yaml"
        if file.is_file():
            return yaml.safe_load(file.read_text()) or {}
        if not self.checkpoints:
            return {}
        blob = torch.load(
            self.checkpoints[-1].path, map_location="cpu", weights_only=True, mmap=True
        )
        return blob.get("run_config") or {}

    @cached_property
    def _events(self) -> list[Any]:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        accumulators = []
        for file in sorted(self.path.glob("tensorboard/**/events.out.tfevents.*")):
            acc = EventAccumulator(str(file), size_guidance={"scalars": 0, "images": 1})
            acc.Reload()
            accumulators.append(acc)
        return accumulators

    @cached_property
    def segments(self) -> list[Segment]:
        out = []
        for acc in self._events:
            if "g_step" not in acc.Tags()["scalars"]:
                continue
            points = sorted((e.value, e.wall_time) for e in acc.Scalars("g_step"))
            out.append(
                Segment(acc.FirstEventTimestamp(), [p[0] for p in points], [p[1] for p in points])
            )
        return sorted(out, key=lambda s: s.start)

    def wall_seconds(self, checkpoint: CheckpointInfo) -> tuple[float | None, str]:
        """Training seconds up to the checkpoint and how they were found (``tensorboard``/``mtime``)."""
        seconds = seconds_to_step(self.segments, checkpoint.g_step)
        if seconds is not None:
            return seconds, "tensorboard"
        mtime = checkpoint.path.stat().st_mtime
        if self.segments and mtime >= self.segments[-1].start:
            # saved after the last logged g_step (e.g. a stop between two logging steps): the
            # earlier processes' time plus the checkpoint's age within its own process
            *before, last = self.segments
            earlier = sum(s.walls[-1] - s.start for s in before if s.walls)
            return earlier + mtime - last.start, "mtime"
        start = self._config_mtime()
        return (mtime - start, "mtime") if start is not None else (None, "unknown")

    def _config_mtime(self) -> float | None:
        file = self.path / "config_resolved.yaml"
        return file.stat().st_mtime if file.is_file() else None

    def kimg_at(self, g_step: float) -> float:
        """kimg of a G step, interpolated between checkpoints (exact while batch and n_critic hold)."""
        points = [(0, 0.0), *((c.g_step, c.kimg) for c in self.checkpoints if c.g_step > 0)]
        steps = [p[0] for p in points]
        i = (
            min(max(bisect.bisect_left(steps, g_step), 1), len(points) - 1)
            if len(points) > 1
            else 0
        )
        if i == 0:
            return 0.0
        (s0, k0), (s1, k1) = points[i - 1], points[i]
        return k0 + (k1 - k0) * (g_step - s0) / (s1 - s0)

    def training_metric(self, tag: str) -> list[tuple[float, float]]:
        """(kimg, value) of an in-training metric scalar (logged at the G step), all segments."""
        values: dict[int, float] = {}
        for acc in self._events:
            if tag in acc.Tags()["scalars"]:
                values |= {
                    e.step: e.value for e in acc.Scalars(tag)
                }  # a resume re-logs: later wins
        return [(self.kimg_at(step), values[step]) for step in sorted(values)]

    def training_metric_samples(self) -> tuple[int | None, int | None]:
        """(n_samples, n_reference) of the run's in-training metrics callback."""
        node = (self.config.get("callbacks") or {}).get("metrics") or {}
        return node.get("n_samples"), node.get("n_reference")

    def health_warnings(self) -> int | None:
        """Warnings of the health monitor in train.log (None when the run has no log)."""
        log_file = self.path / "train.log"
        if not log_file.is_file():
            return None
        return sum(
            "training health:" in line for line in log_file.read_text(errors="replace").splitlines()
        )
