"""docs/results.md, written whole: header, one table per dataset, curves, grids, spread, targets."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from gan_lab.results.build import BuildOptions, Results
from gan_lab.results.plots import plot_curves
from gan_lab.results.records import METRIC_VALUES, CellScore
from gan_lab.results.run_reading import REACHED_TOLERANCE
from gan_lab.results.targets import judge_targets

COLUMNS: dict[str, tuple[str, Callable[[float], str]]] = {
    "fid": ("FID", lambda v: f"{v:.2f}"),
    "kid": ("KID x 1e3", lambda v: f"{v * 1e3:.2f}"),
    "precision": ("precision", lambda v: f"{v:.3f}"),
    "recall": ("recall", lambda v: f"{v:.3f}"),
    "classes_hit": ("classes hit", lambda v: f"{v:.0f}"),
    "classifier_fd": ("classifier FD", lambda v: f"{v:.4g}"),
    "is": ("IS", lambda v: f"{v:.2f}"),
}
DATASET_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}


def value_keys(metrics: tuple[str, ...]) -> list[str]:
    return [key for m in metrics for key in METRIC_VALUES.get(m, (m,))]


def format_value(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return COLUMNS[key][1](value) if key in COLUMNS else f"{value:.4g}"


def _kimg(x: float) -> str:
    return f"{x:.5g}"


def _minutes(x: float) -> str:
    return f"{x:.1f}" if x >= 1 else f"{x:.2g}"


def table_row(cell: CellScore, keys: list[str], n_samples: int | None = None) -> str:
    """One markdown row; a missing or unreached cell says why in its checkpoint column, and a
    cell scored at other counts than the table's (``n_samples``) says at which."""
    label = f"↳ repeat `{cell.run_id}`" if cell.repeat_of else f"`{cell.recipe}`"
    if cell.missing:
        where, numbers, cpu, grid = "missing", ["-"] * len(keys), "-", ""
    elif not cell.reached:
        where, numbers, cpu, grid = (
            f"not reached (max {_kimg(cell.max_kimg)} kimg)"
            if cell.max_kimg < cell.budget_kimg * (1 - REACHED_TOLERANCE)
            else f"no checkpoint by {_kimg(cell.budget_kimg)} kimg",
            ["-"] * len(keys),
            "-",
            "",
        )
    else:
        short = cell.kimg < cell.budget_kimg * (1 - REACHED_TOLERANCE)
        where = f"{_kimg(cell.kimg)} ({cell.g_step})" + (" ‡" if short else "")
        if n_samples is not None and cell.n_samples not in (None, n_samples):
            where += f", scored {cell.n_samples} vs {cell.n_reference}"
        numbers = [
            format_value(k, cell.values.get(k)) if cell.values else "not scored" for k in keys
        ]
        mark = "" if cell.wall_source == "tensorboard" else " †"
        cpu = f"{_minutes(cell.cpu_minutes)}{mark}" if cell.cpu_minutes is not None else "n/a"
        grid = f"[grid]({cell.grid})" if cell.grid else ""
    return "| " + " | ".join([label, _kimg(cell.budget_kimg), where, *numbers, cpu, grid]) + " |"


def ordered_cells(results: Results, dataset: str) -> list[CellScore]:
    """Per first-seed run (spec order) and budget: its row, then the rows of its repeats."""
    cells = [c for c in results.cells if c.dataset == dataset]
    out = []
    for main in (c for c in cells if c.repeat_of is None):
        out.append(main)
        out += [
            c for c in cells if c.repeat_of == main.run_id and c.budget_kimg == main.budget_kimg
        ]
    return out


def dataset_section(
    results: Results, dataset: str, options: BuildOptions, img_dir: Path, doc_dir: Path
) -> list[str]:
    keys = value_keys(options.metrics)
    headers = [
        "recipe",
        "budget kimg",
        "checkpoint kimg (G step)",
        *(COLUMNS.get(k, (k,))[0] for k in keys),
        "CPU-min",
        "grid",
    ]
    lines = [f"## {DATASET_NAMES[dataset]}", ""]
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += [table_row(c, keys, options.n_samples) for c in ordered_cells(results, dataset)]
    short = any(
        c.reached and c.kimg < c.budget_kimg * (1 - REACHED_TOLERANCE)
        for c in results.cells
        if c.dataset == dataset
    )
    fallback = any(
        c.reached and c.wall_source != "tensorboard" for c in results.cells if c.dataset == dataset
    )
    lines += [
        "",
        f"Each cell: the run's checkpoint closest to the budget without going over it (1% over "
        f"allowed; `best.ckpt` is no candidate: a metric chose it), scored by `gan-eval` with {options.n_samples} EMA samples vs {options.reference} "
        f"training images (FID, KID, precision/recall on Inception features; classes hit and "
        f"classifier FD on the dataset's in-domain classifier). CPU-minutes: wall-clock training "
        f"time up to the checkpoint (event times of the TensorBoard `g_step` scalar, summed over "
        f"the run's event files so pauses between resumes do not count; in-training metrics and "
        f"checkpoint writes included) x the torch threads of the run."
        + (
            " †: the TensorBoard `g_step` scalar stops before that step; the checkpoint's mtime minus the start of its process (plus earlier processes), or minus config_resolved.yaml's mtime without TensorBoard."
            if fallback
            else ""
        )
        + (
            " ‡: no checkpoint within 1% of the budget; the nearest one before it." if short else ""
        ),
        "",
    ]
    curves = {
        run_id: points for run_id, points in results.curves.items()
        if any(c.run_id == run_id and c.dataset == dataset for c in results.cells)
    }  # fmt: skip
    png = img_dir / f"results_{dataset}_fid_vs_kimg.png"
    entries = (
        plot_curves(curves, f"{DATASET_NAMES[dataset]}: metrics vs kimg", png) if curves else []
    )
    if entries:
        rel = Path(os.path.relpath(png.resolve(), doc_dir.resolve())).as_posix()
        lines += [f"![{DATASET_NAMES[dataset]} curves]({rel})", ""]
        lines += ["Curves (each line: recipe, source, generated vs reference images):", ""]
        lines += [f"- {e.text}" for e in entries]
        lines += ["", *curve_sources_note({e.source for e in entries}), ""]
    return lines


def curve_sources_note(sources: set[str]) -> list[str]:
    """What the plotted sources are (``CurvePoint.source``), only for the sources the plot has."""
    notes = []
    if "gan-eval" in sources:
        notes.append(
            "`gan-eval` points: checkpoints scored by `gan-eval` at the counts each line names "
            "(fewer than the table's, so a higher FID)."
        )
    if "in-training" in sources:
        notes.append("`in-training`: the metrics callback's scalars of the run.")
    return [" ".join(notes)] if notes else []


def spread_lines(results: Results, keys: list[str]) -> list[str]:
    by_key = {(c.run_id, c.budget_kimg): c for c in results.cells}
    lines = []
    for rep in (c for c in results.cells if c.repeat_of and c.reached and c.values):
        main = by_key.get((rep.repeat_of, rep.budget_kimg))
        if main is None or not main.values:
            continue
        if (main.n_samples, main.n_reference) != (rep.n_samples, rep.n_reference):
            # FID falls with the sample count: a 2k and a 10k figure are no spread
            lines.append(
                f"- `{main.recipe}` at {_kimg(rep.budget_kimg)} kimg: `{rep.run_id}` scored "
                f"{rep.n_samples} vs {rep.n_reference}, `{main.run_id}` {main.n_samples} vs "
                f"{main.n_reference}: not comparable"
            )
            continue
        parts = [
            f"{COLUMNS.get(k, (k,))[0]} {format_value(k, main.values[k])} vs {format_value(k, rep.values[k])}"
            for k in keys if main.values.get(k) is not None and rep.values.get(k) is not None
        ]  # fmt: skip
        lines.append(
            f"- `{main.recipe}` at {_kimg(rep.budget_kimg)} kimg, `{main.run_id}` vs `{rep.run_id}`: {'; '.join(parts)}"
        )
    return lines


def render(
    results: Results, options: BuildOptions, img_dir: Path, doc_dir: Path, command: str, date: str
) -> str:
    """The whole page; writes the curve PNGs as it goes."""
    machines: dict[str, list[str]] = {}
    for run_id, machine in results.machines.items():
        machines.setdefault(machine, []).append(f"`{run_id}`")
    lines = [
        "# Results: recipes at equal kimg budgets",
        "",
        "Written whole by `scripts/build_results.py` (do not edit by hand; rerun it):",
        "",
        f"    {command}",
        "",
        f"Built {date}. Machine (CPU type of the runs):",
        "",
        *(f"- {m}: {', '.join(runs)}" for m, runs in machines.items()),
        "",
    ]
    if results.carried:
        lines += [
            "Carried over from the records file (their run directories are not on the machine "
            "of this build; the numbers are those of the build named):",
            "",
            *(f"- `{run_id}`: built {built}" for run_id, built in results.carried.items()),
            "",
        ]
    for dataset in DATASET_NAMES:
        if any(c.dataset == dataset for c in results.cells):
            lines += dataset_section(results, dataset, options, img_dir, doc_dir)
    if results.grids:
        lines += ["## Sample grids", ""]
        for run_id, (path, kimg) in results.grids.items():
            lines += [
                f"`{run_id}` at {_kimg(kimg)} kimg ({options.grid_n} EMA samples, `gan-sample` seed 0):",
                "",
                f"![{run_id}]({path})",
                "",
            ]
    spread = spread_lines(results, value_keys(options.metrics))
    if spread:
        lines += ["## Spread (a second seed of a cell)", "", *spread, ""]
    lines += ["## Targets", "", "| target | status | numbers |", "|---|---|---|"]
    for t in judge_targets(results.cells, results.curves, results.health, results.machines):
        lines.append(f"| {t.target} | **{t.status}** | {t.detail} |")
    lines += [
        "",
        "The score targets are judged on first-seed runs only, the health target on every "
        "run's train.log. The classic hand-written loop (`scripts/classic_loop.py`) "
        "is not a `gan-train` run: its numbers are in docs/benchmarks.md, not judged here.",
        "",
        "## Missing",
        "",
    ]
    lines += [f"- {m}" for m in results.missing] or [
        "- none: every run of the spec has checkpoints"
    ]
    return "\n".join(lines) + "\n"
