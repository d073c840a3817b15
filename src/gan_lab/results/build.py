"""Collect the cells, curves and grids of a results spec, then write the markdown and plots."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from gan_lab.machine import describe_cpu
from gan_lab.results.records import CellScore, CurvePoint, flat_values
from gan_lab.results.records_file import RunRecord
from gan_lab.results.run_reading import CheckpointInfo, Pick, RunDir, pick_checkpoint
from gan_lab.results.scoring import EvalRequest, Scorer
from gan_lab.results.spec import ResultsSpec, RunSpec

log = logging.getLogger(__name__)

TABLE_METRICS = ("fid", "kid", "precision_recall", "class_coverage", "classifier_fd")
TRAINING_CURVES = ("metrics/fid", "metrics/kid", "metrics/classifier_fd", "metrics/classes_hit")


@dataclass(frozen=True)
class BuildOptions:
    metrics: tuple[str, ...] = TABLE_METRICS
    n_samples: int = 10000
    n_reference: int | None = None  # None: n_samples
    curve_metrics: tuple[str, ...] = ("fid", "kid")
    curve_samples: int = 2000  # 0: no gan-eval curve points
    curve_points: int = 8  # checkpoints per curve besides the table's (evenly spaced in kimg)
    training_curves: tuple[str, ...] = TRAINING_CURVES
    grid_n: int = 64
    grid_nrow: int = 8
    eval_args: tuple[
        str, ...
    ] = ()  # extra gan-eval keys (inception_weights=..., classifier_path=...)
    sample_args: tuple[str, ...] = ()  # extra gan-sample keys

    @property
    def reference(self) -> int:
        return self.n_reference or self.n_samples


@dataclass
class Results:
    cells: list[CellScore] = field(default_factory=list)
    curves: dict[str, list[CurvePoint]] = field(default_factory=dict)  # main run id -> points
    health: dict[str, int | None] = field(default_factory=dict)
    machines: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    grids: dict[str, tuple[str, float]] = field(default_factory=dict)  # run id -> (path, kimg)
    carried: dict[str, str] = field(default_factory=dict)  # run id -> build that scored it

    def records(self, built: str, previous: dict[str, RunRecord]) -> dict[str, RunRecord]:
        """Every run of this build as a record: carried ones as they were, the rest from now."""
        out = {}
        for run_id, machine in self.machines.items():
            if run_id in self.carried:
                out[run_id] = previous[run_id]
            elif any(c.run_id == run_id and not c.missing for c in self.cells):
                out[run_id] = RunRecord(
                    run_id, built, machine,
                    cells=[c for c in self.cells if c.run_id == run_id],
                    curve=list(self.curves.get(run_id, [])),
                    health=self.health.get(run_id), grid=self.grids.get(run_id),
                )  # fmt: skip
        return out


def curve_checkpoints(
    checkpoints: list[CheckpointInfo], picks: list[Pick], n: int
) -> list[CheckpointInfo]:
    """The table's checkpoints and ``n`` more, nearest to evenly spaced kimg up to the last one."""
    chosen = {p.checkpoint.g_step: p.checkpoint for p in picks if p.checkpoint}
    if checkpoints and n > 0:
        top = checkpoints[-1].kimg
        for i in range(1, n + 1):
            near = min(checkpoints, key=lambda c: abs(c.kimg - top * i / n))
            chosen.setdefault(near.g_step, near)
    return sorted(chosen.values(), key=lambda c: c.g_step)


class Collector:
    """Reads every run of the spec and scores what the table, curves and grids need."""

    def __init__(
        self,
        spec: ResultsSpec,
        options: BuildOptions,
        scorer: Scorer,
        img_dir: Path,
        doc_dir: Path,
        records: dict[str, RunRecord] | None = None,
    ):
        self.spec, self.options, self.scorer = spec, options, scorer
        self.img_dir, self.doc_dir, self.records = img_dir, doc_dir, records or {}
        self.results = Results()

    def collect(self) -> Results:
        for run in self.spec.runs:
            self.collect_run(run)
        return self.results

    def _overrides(self, run: RunSpec, command: str = "eval") -> tuple[str, ...]:
        extra = self.options.eval_args if command == "eval" else self.options.sample_args
        return (*run.overrides, *extra)

    def _missing(self, run: RunSpec, why: str, max_kimg: float = 0.0) -> None:
        self.results.missing.append(f"`{run.id}` ({run.dataset} `{run.recipe}`): {why}")
        for budget in run.budgets_kimg:
            self.results.cells.append(
                CellScore(
                    run.id,
                    run.dataset,
                    run.recipe,
                    budget,
                    max_kimg=max_kimg,
                    repeat_of=run.repeat_of,
                    missing=why,
                )
            )

    def _carry(self, record: RunRecord) -> None:
        """A run scored by an earlier build (its directory is not on this machine)."""
        r = self.results
        r.carried[record.run_id], r.machines[record.run_id] = record.built, record.machine
        r.cells += record.cells
        r.health[record.run_id] = record.health
        if record.curve:
            r.curves[record.run_id] = list(record.curve)
        if record.grid:
            r.grids[record.run_id] = record.grid

    def collect_run(self, run: RunSpec) -> None:
        if not run.run_dir.is_dir():  # carried, or missing (no CPU named: it never trained)
            if run.id in self.records:
                return self._carry(self.records[run.id])
            return self._missing(run, f"run directory {run.run_dir} does not exist")
        run_dir = RunDir(run.run_dir)
        self.results.machines[run.id] = (
            run.machine
            or run_dir.machine
            or self.spec.machine
            or (f"{describe_cpu()} (this host at build time: the run did not record its CPU)")
        )
        self.results.health[run.id] = run_dir.health_warnings()
        checkpoints = run_dir.checkpoints
        if not checkpoints:
            return self._missing(
                run, f"no checkpoint with progress in {run.run_dir / 'checkpoints'}"
            )
        picks = [pick_checkpoint(checkpoints, budget) for budget in run.budgets_kimg]
        grid = self._grid(run, picks, checkpoints[-1])
        for pick in picks:
            self.results.cells.append(self._cell(run, run_dir, pick, grid))
        if run.repeat_of is None:
            self.results.curves[run.id] = self._curve(run, run_dir, checkpoints, picks)

    def _cell_counts(self, run: RunSpec) -> tuple[int, int]:
        o = self.options
        return (run.samples, run.samples) if run.samples else (o.n_samples, o.reference)

    def _cell_request(self, run: RunSpec, ckpt: CheckpointInfo) -> EvalRequest:
        n, n_ref = self._cell_counts(run)
        return EvalRequest(ckpt, self.options.metrics, n, n_ref, self._overrides(run))

    def _curve_request(self, run: RunSpec, ckpt: CheckpointInfo, cells: set[int]) -> EvalRequest:
        """A curve point's gan-eval; a table checkpoint scored at the curve's counts with every
        curve metric already is read from the cell's score instead of scored again."""
        o = self.options
        if (
            ckpt.g_step in cells
            and self._cell_counts(run) == (o.curve_samples, o.curve_samples)
            and set(o.curve_metrics) <= set(o.metrics)
        ):
            return self._cell_request(run, ckpt)
        return EvalRequest(
            ckpt, o.curve_metrics, o.curve_samples, o.curve_samples, self._overrides(run)
        )

    def _cell(self, run: RunSpec, run_dir: RunDir, pick: Pick, grid: str | None) -> CellScore:
        base = CellScore(
            run.id,
            run.dataset,
            run.recipe,
            pick.budget_kimg,
            max_kimg=pick.max_kimg,
            repeat_of=run.repeat_of,
        )
        ckpt = pick.checkpoint
        if ckpt is None:
            return base
        report = self.scorer.score(self._cell_request(run, ckpt))
        seconds, source = run_dir.wall_seconds(ckpt)
        o, n, n_ref = self.options, *self._cell_counts(run)
        return CellScore(
            run.id, run.dataset, run.recipe, pick.budget_kimg, kimg=ckpt.kimg, g_step=ckpt.g_step,
            max_kimg=pick.max_kimg, values=flat_values(report, o.metrics) if report else {},
            n_samples=n, n_reference=n_ref,
            cpu_minutes=seconds * run.threads / 60 if seconds is not None else None,
            wall_source=source, repeat_of=run.repeat_of, grid=grid,
        )  # fmt: skip

    def _grid(self, run: RunSpec, picks: list[Pick], last: CheckpointInfo) -> str | None:
        """The sample grid of the largest budget reached (else the last checkpoint), first seeds only."""
        if run.repeat_of is not None:
            return None
        reached = [p.checkpoint for p in picks if p.checkpoint]
        ckpt = reached[-1] if reached else last
        dest = self.img_dir / f"results_{run.id}.png"
        written = self.scorer.grid(
            ckpt, self.options.grid_n, self.options.grid_nrow, self._overrides(run, "sample"), dest
        )
        if written is None:
            return None
        self.results.grids[run.id] = (_relative(written, self.doc_dir), ckpt.kimg)
        return self.results.grids[run.id][0]

    def _curve(
        self, run: RunSpec, run_dir: RunDir, checkpoints: list[CheckpointInfo], picks: list[Pick]
    ) -> list[CurvePoint]:
        o, points = self.options, []
        cells = {p.checkpoint.g_step for p in picks if p.checkpoint}
        if o.curve_samples > 0:
            for ckpt in curve_checkpoints(checkpoints, picks, o.curve_points):
                report = self.scorer.score(self._curve_request(run, ckpt, cells))
                if report is None:
                    continue
                seconds, _ = run_dir.wall_seconds(ckpt)
                points.append(CurvePoint(
                    ckpt.kimg, flat_values(report, o.curve_metrics), o.curve_samples, o.curve_samples,
                    g_step=ckpt.g_step, cpu_minutes=seconds * run.threads / 60 if seconds is not None else None,
                ))  # fmt: skip
        n_samples, n_reference = run_dir.training_metric_samples()
        for tag in o.training_curves:
            name = tag.rsplit("/", 1)[-1]
            for kimg, value in run_dir.training_metric(tag):
                points.append(
                    CurvePoint(kimg, {name: value}, n_samples, n_reference, source="in-training")
                )
        return points


def _relative(path: Path, start: Path) -> str:
    import os

    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()
