"""The numbers a results table is made of: one scored cell, one curve point.

Plain records, so the markdown, the plots and the target checks can be tested on scripted
numbers without a run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# registered metric -> the numbers of its gan-eval JSON entry the table shows
METRIC_VALUES: dict[str, tuple[str, ...]] = {
    "fid": ("fid",),
    "kid": ("kid",),
    "precision_recall": ("precision", "recall"),
    "class_coverage": ("classes_hit",),
    "classifier_fd": ("classifier_fd",),
    "is": ("is",),
}


def flat_values(report: dict, metrics: tuple[str, ...]) -> dict[str, float | None]:
    """The table's numbers out of one gan-eval report (None where a metric was unavailable)."""
    out: dict[str, float | None] = {}
    for metric in metrics:
        entry = report["metrics"].get(metric, {})
        for key in METRIC_VALUES.get(metric, (metric,)):
            value = entry.get(key)
            out[key] = float(value) if value is not None else None
    return out


@dataclass(frozen=True)
class CellScore:
    """One recipe at one kimg budget: the checkpoint picked and its scores (None: not reached)."""

    run_id: str
    dataset: str
    recipe: str
    budget_kimg: float
    kimg: float | None = None  # of the picked checkpoint
    g_step: int | None = None
    max_kimg: float = 0.0  # the run's furthest checkpoint
    values: dict[str, float | None] = field(default_factory=dict)
    n_samples: int | None = None
    n_reference: int | None = None
    cpu_minutes: float | None = None
    wall_source: str = "tensorboard"
    repeat_of: str | None = None
    grid: str | None = None  # the sample grid's path relative to the markdown file
    missing: str | None = None  # why the run has no cell at all (no run dir, no checkpoint)

    @property
    def reached(self) -> bool:
        return self.kimg is not None


@dataclass(frozen=True)
class CurvePoint:
    """One checkpoint scored cheaply (``n_samples``) or one in-training metric scalar."""

    kimg: float
    values: dict[str, float | None]
    n_samples: int | None
    n_reference: int | None
    g_step: int | None = None
    cpu_minutes: float | None = None
    source: str = "gan-eval"  # or "in-training"
