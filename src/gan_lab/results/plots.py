"""FID (and the other curve metrics) against kimg, one figure per dataset, one colour per recipe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from gan_lab.errors import UserError
from gan_lab.results.records import CurvePoint

PANEL_ORDER = ("fid", "kid", "classifier_fd", "precision", "recall", "classes_hit")
LABELS = {"fid": "FID", "kid": "KID", "classifier_fd": "classifier FD"}
# bounded quantities (fractions, a class count) read best on a linear axis; distances span decades
LINEAR_PANELS = frozenset({"precision", "recall", "classes_hit"})


class DrawnLine(NamedTuple):
    """One line of the figure: its legend text (metric: recipe (source, counts)) and its source."""

    text: str
    source: str  # CurvePoint.source: gan-eval | in-training


def axis_scale(name: str, values: Sequence[float]) -> str:
    """``log`` for a distance curve whose values are all positive, else ``linear``."""
    if name in LINEAR_PANELS or not values or min(values) <= 0:
        return "linear"
    return "log"


def _counts(p: CurvePoint) -> str:
    return f"{p.n_samples} vs {p.n_reference}" if p.n_samples else "sample count unknown"


def source_label(points: Sequence[CurvePoint]) -> str:
    """``gan-eval, 2000 vs 2000`` / ``in-training, 2000 vs 5000``: which numbers a line shows."""
    p = points[0]
    return f"{p.source}, {_counts(p)}"


def panels(curves: Mapping[str, Sequence[CurvePoint]]) -> list[str]:
    present = {
        k
        for points in curves.values()
        for p in points
        for k, v in p.values.items()
        if v is not None
    }
    return [k for k in PANEL_ORDER if k in present] + sorted(present - set(PANEL_ORDER))


def plot_curves(
    curves: Mapping[str, Sequence[CurvePoint]], title: str, path: Path
) -> list[DrawnLine]:
    """Write the PNG; returns the lines drawn (legend text and source) for the caption."""
    try:
        import matplotlib
    except ImportError:
        raise UserError(
            "the curves need matplotlib: pip install matplotlib (or -e '.[dev]')"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = panels(curves)
    if not names:
        return []
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.0), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    entries: list[DrawnLine] = []
    for ax, name in zip(axes[0], names, strict=True):
        drawn: list[float] = []
        for i, (label, points) in enumerate(curves.items()):
            for source, style in (("gan-eval", "-o"), ("in-training", "--x")):
                line = sorted(
                    (p for p in points if p.source == source and p.values.get(name) is not None),
                    key=lambda p: p.kimg,
                )
                if not line:
                    continue
                ys = [p.values[name] for p in line]
                drawn += ys
                text = f"{label} ({source_label(line)})"
                ax.plot(
                    [p.kimg for p in line],
                    ys,
                    style,
                    color=colours[i % len(colours)],
                    label=text,
                    markersize=3,
                )
                entries.append(DrawnLine(f"{LABELS.get(name, name)}: {text}", source))
        ax.set_yscale(axis_scale(name, drawn))
        ax.set_xlabel("kimg (real images shown to D / 1000)")
        ax.set_ylabel(LABELS.get(name, name))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return entries
