"""The issue's targets, judged from the numbers: met / not met (by how much) / missing.

Only first-seed runs are judged (a repeat shows the spread). FID targets at "10k" take table
cells scored with at least 10k samples and 10k reference images; the 2k target takes the
2k-vs-2k curve point of the checkpoint picked at 500 kimg.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gan_lab.results.records import CellScore, CurvePoint

MET, NOT_MET, MISSING = "met", "not met", "missing"


@dataclass(frozen=True)
class TargetResult:
    target: str
    status: str  # met | not met | missing
    detail: str


NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}


def _fmt(x: float) -> str:
    return f"{x:.5g}"


def _cells(cells: Sequence[CellScore], dataset: str, recipe: str) -> list[CellScore]:
    return [c for c in cells if (c.dataset, c.recipe) == (dataset, recipe) and c.repeat_of is None]


def at_most(name: str, fid: float, limit: float, where: str) -> TargetResult:
    """Met when ``fid <= limit``; otherwise by how much it misses."""
    text = f"FID {_fmt(fid)} {where}"
    if fid <= limit:
        return TargetResult(name, MET, text)
    return TargetResult(name, NOT_MET, f"{text}: {_fmt(fid - limit)} above the target")


def fid_within(
    cells: Sequence[CellScore], dataset: str, recipe: str, limit: float, within_kimg: float,
    min_samples: int = 10000,
) -> TargetResult:  # fmt: skip
    """Best FID of the recipe's table cells at budgets <= ``within_kimg``, scored at >= 10k."""
    name = f"{NAMES[dataset]} `{recipe}`: FID ({min_samples // 1000}k vs {min_samples // 1000}k train) <= {_fmt(limit)} within {_fmt(within_kimg)} kimg"
    scored = [
        c for c in _cells(cells, dataset, recipe)
        if c.reached and c.budget_kimg <= within_kimg and c.values.get("fid") is not None
        and (c.n_samples or 0) >= min_samples and (c.n_reference or 0) >= min_samples
    ]  # fmt: skip
    if not scored:
        reached = [c for c in _cells(cells, dataset, recipe) if c.reached]
        why = "no scored cell" if reached else "the run is missing or has not reached a budget"
        return TargetResult(name, MISSING, f"{why} (FID at >= {min_samples} samples needed)")
    best = min(scored, key=lambda c: c.values["fid"])
    where = f"at {_fmt(best.kimg)} kimg (budget {_fmt(best.budget_kimg)})"
    return at_most(name, best.values["fid"], limit, where)


def fid_2k_at(
    cells: Sequence[CellScore], curves: Mapping[str, Sequence[CurvePoint]], dataset: str,
    recipe: str, limit: float, budget_kimg: float, n: int = 2000,
) -> TargetResult:  # fmt: skip
    """FID (n EMA samples vs n train) of the checkpoint the table picked at ``budget_kimg``."""
    name = f"{NAMES[dataset]} `{recipe}`: FID ({n // 1000}k vs {n // 1000}k train) <= {_fmt(limit)} after {_fmt(budget_kimg)} kimg"
    cell = next((c for c in _cells(cells, dataset, recipe) if c.budget_kimg == budget_kimg), None)
    if cell is None or not cell.reached:
        return TargetResult(name, MISSING, f"no checkpoint of the run at {_fmt(budget_kimg)} kimg")
    point = next(
        (
            p for p in curves.get(cell.run_id, ())
            if p.source == "gan-eval" and p.g_step == cell.g_step and p.n_samples == n
            and p.n_reference == n and p.values.get("fid") is not None
        ),
        None,
    )  # fmt: skip
    if point is None:
        return TargetResult(
            name, MISSING, f"the {_fmt(cell.kimg)} kimg checkpoint has no {n}-sample FID"
        )
    return at_most(name, point.values["fid"], limit, f"at {_fmt(point.kimg)} kimg")


def _scored_fids(cells: Sequence[CellScore], dataset: str, recipe: str) -> list[CellScore]:
    return [c for c in _cells(cells, dataset, recipe) if c.values.get("fid") is not None]


def ahead_at_equal_kimg(
    cells: Sequence[CellScore], dataset: str, recipe: str, baseline: str
) -> TargetResult:
    """Lower FID than ``baseline`` at every budget both reached, scored with the same sample and
    reference counts (FID falls with the sample count: 2k and 10k figures do not compare)."""
    name = (
        f"{NAMES[dataset]} `{recipe}` ahead of `{baseline}` at equal kimg (FID of the table cells)"
    )
    ours: dict[tuple, list[CellScore]] = {}
    theirs: dict[tuple, list[CellScore]] = {}
    for r, into in ((recipe, ours), (baseline, theirs)):
        for c in _scored_fids(cells, dataset, r):
            into.setdefault((c.budget_kimg, c.n_samples, c.n_reference), []).append(c)
    common = sorted(set(ours) & set(theirs))
    if not common:
        unmatched = sorted({b for b, *_ in ours} & {b for b, *_ in theirs})
        why = (
            f"the cells at {', '.join(_fmt(b) for b in unmatched)} kimg were scored with different "
            "sample counts"
            if unmatched
            else "no budget where both recipes have a FID"
        )
        return TargetResult(name, MISSING, why)
    # a recipe with runs on several machines: each of its cells against each of the baseline's
    pairs = [(a, b) for k in common for a in ours[k] for b in theirs[k]]
    parts = [f"{_fmt(a.budget_kimg)} kimg: {_fmt(a.values['fid'])} vs {_fmt(b.values['fid'])}"
             for a, b in pairs]  # fmt: skip
    ahead = all(a.values["fid"] < b.values["fid"] for a, b in pairs)
    return TargetResult(name, MET if ahead else NOT_MET, "; ".join(parts))


def cpu_model(machine: str) -> str:
    """The CPU part of a machine description (its thread count aside: CPU-minutes count those)."""
    return re.sub(r",\s*\d+ torch threads?\s*$", "", machine.strip())


def _fid_points(
    cells: Sequence[CellScore], curves: Mapping[str, Sequence[CurvePoint]], dataset: str,
    recipe: str,
) -> dict[str, list[CurvePoint]]:  # fmt: skip
    """Run id -> its points with FID and CPU time: ``gan-eval`` curve points and table cells."""
    points: dict[str, list[CurvePoint]] = {}
    for c in _cells(cells, dataset, recipe):
        points.setdefault(c.run_id, [])
        if c.values.get("fid") is not None and c.cpu_minutes is not None:
            points[c.run_id].append(
                CurvePoint(c.kimg or c.budget_kimg, c.values, c.n_samples, c.n_reference, c.g_step, c.cpu_minutes)
            )  # fmt: skip
    for run_id, mine in points.items():
        mine += [
            p for p in curves.get(run_id, ())
            if p.source == "gan-eval" and p.cpu_minutes is not None and p.values.get("fid") is not None
        ]  # fmt: skip
    return points


def ahead_at_equal_cpu_time(
    cells: Sequence[CellScore], curves: Mapping[str, Sequence[CurvePoint]], dataset: str,
    recipe: str, baseline: str, machines: Mapping[str, str] | None = None,
) -> TargetResult:  # fmt: skip
    """Each scored point of ``baseline`` against the recipe's last point at no more CPU time:
    met when the recipe's FID is lower at every such pair. Points are table cells and curve
    points at one sample count, of runs on one CPU model (CPU-minutes of two CPUs do not
    compare): judged on every CPU model both recipes were trained on."""
    name = f"{NAMES[dataset]} `{recipe}` ahead of `{baseline}` at equal CPU time (FID)"
    by_run = {r: _fid_points(cells, curves, dataset, r) for r in (recipe, baseline)}

    def cpu_of(run_id: str) -> str:
        return cpu_model(machines[run_id]) if machines and run_id in machines else "unknown CPU"

    by_cpu: dict[str, dict[str, list[CurvePoint]]] = {recipe: {}, baseline: {}}
    for r, runs in by_run.items():
        for run_id, points in runs.items():
            if points:
                by_cpu[r].setdefault(cpu_of(run_id), []).extend(points)
    if not by_cpu[recipe] or not by_cpu[baseline]:
        return TargetResult(name, MISSING, "a recipe has no scored point with FID and CPU time")
    shared = sorted(set(by_cpu[recipe]) & set(by_cpu[baseline]))
    if not shared:
        return TargetResult(
            name, MISSING,
            f"trained on different CPUs ({'; '.join(sorted(by_cpu[recipe]))} vs "
            f"{'; '.join(sorted(by_cpu[baseline]))}): train both on one machine",
        )  # fmt: skip
    tried = [(cpu, *_cpu_time_pairs(by_cpu[recipe][cpu], by_cpu[baseline][cpu])) for cpu in shared]
    judged = [(cpu, count, pairs) for cpu, count, pairs in tried if pairs]
    if not judged:
        if all(count is None for _, count, _ in tried):
            return TargetResult(name, MISSING, "no sample count at which both recipes were scored")
        last = max(p.cpu_minutes for cpu in shared for p in by_cpu[baseline][cpu])
        return TargetResult(
            name, MISSING,
            f"no scored point of `{recipe}` within {_fmt(last)} CPU-minutes (the last of `{baseline}`)",
        )  # fmt: skip
    detail = " | ".join(
        "; ".join(
            f"FID {_fmt(a.values['fid'])} ({_fmt(a.cpu_minutes)} min, {_fmt(a.kimg)} kimg) vs "
            f"{_fmt(b.values['fid'])} ({_fmt(b.cpu_minutes)} min, {_fmt(b.kimg)} kimg)"
            for a, b in pairs
        )
        + f"; {count[0]} samples, {cpu}"
        for cpu, count, pairs in judged
    )
    ahead = all(a.values["fid"] < b.values["fid"] for _, _, pairs in judged for a, b in pairs)
    return TargetResult(name, MET if ahead else NOT_MET, detail)


def _cpu_time_pairs(
    ours_all: list[CurvePoint], theirs_all: list[CurvePoint]
) -> tuple[tuple[int | None, int | None] | None, list[tuple[CurvePoint, CurvePoint]]]:
    """On one CPU, at the largest sample count both were scored at: each baseline point with the
    recipe's last point at no more CPU time (none when the recipe has no point that early). The
    count is None when the two share no sample count."""
    counts = {(p.n_samples, p.n_reference) for p in ours_all} & {
        (p.n_samples, p.n_reference) for p in theirs_all
    }
    if not counts:
        return None, []
    count = max(counts, key=lambda c: (c[0] or 0, c[1] or 0))
    ours, theirs = (
        sorted((p for p in pts if (p.n_samples, p.n_reference) == count), key=lambda p: p.cpu_minutes)
        for pts in (ours_all, theirs_all)
    )  # fmt: skip
    pairs = []
    for b in theirs:
        earlier = [p for p in ours if p.cpu_minutes <= b.cpu_minutes]
        if earlier:
            pairs.append((earlier[-1], b))
    return count, pairs


def no_collapse(
    cells: Sequence[CellScore],
    curves: Mapping[str, Sequence[CurvePoint]] | None = None,
    num_classes: int = 10,
) -> TargetResult:
    """Every scored first-seed cell hits every class, and no run's curve drops below all classes
    once it has hit them all: a collapse after a cell's checkpoint counts, a G still learning its
    classes before the first budget (9 of 10 at 100 kimg) does not."""
    name = (
        f"no recipe collapses: classes hit {num_classes} of {num_classes} in every cell, "
        "and no curve loses a class once it has hit all"
    )
    scored = [c for c in cells if c.repeat_of is None and c.values.get("classes_hit") is not None]
    points = [
        (run, p) for run, run_points in (curves or {}).items()
        for p in sorted(run_points, key=lambda q: q.kimg)
        if p.values.get("classes_hit") is not None
    ]  # fmt: skip
    if not scored and not points:
        return TargetResult(name, MISSING, "no cell was scored with class_coverage")
    low = [
        f"{c.recipe} at {_fmt(c.budget_kimg)} kimg: {c.values['classes_hit']:.0f}"
        for c in scored
        if c.values["classes_hit"] < num_classes
    ]
    learned: set[str] = set()  # runs whose curve has hit every class
    for run, p in points:
        if p.values["classes_hit"] >= num_classes:
            learned.add(run)
        elif run in learned:
            low.append(f"{run} at {_fmt(p.kimg)} kimg ({p.source}): {p.values['classes_hit']:.0f}")
    if not low:
        return TargetResult(name, MET, f"{len(scored)} cells, {len(points)} curve points")
    return TargetResult(name, NOT_MET, ", ".join(low))


def health_quiet(warnings: Mapping[str, int | None]) -> TargetResult:
    """No ``training health:`` warning in any run's train.log."""
    name = "the health monitor stays quiet (no `training health:` warning in train.log)"
    known = {run: n for run, n in warnings.items() if n is not None}
    if not known:
        return TargetResult(name, MISSING, "no run has a train.log")
    loud = {run: n for run, n in known.items() if n}
    unread = sorted(set(warnings) - set(known))
    suffix = f" (no train.log: {', '.join(unread)})" if unread else ""
    if not loud:
        return TargetResult(name, MET, f"{len(known)} runs{suffix}")
    return TargetResult(
        name, NOT_MET, ", ".join(f"{r}: {n} warnings" for r, n in sorted(loud.items())) + suffix
    )


def judge_targets(
    cells: Sequence[CellScore],
    curves: Mapping[str, Sequence[CurvePoint]],
    health: Mapping[str, int | None],
    machines: Mapping[str, str] | None = None,
) -> list[TargetResult]:
    """The targets of issue 15, in its order (``machines``: run id -> the CPU it trained on)."""
    return [
        fid_within(cells, "mnist", "mnist_budget", 5.0, 1000.0),
        fid_2k_at(cells, curves, "mnist", "mnist_budget", 12.0, 500.0),
        fid_within(cells, "cifar10", "cifar10_budget", 25.0, 3000.0),
        ahead_at_equal_kimg(cells, "cifar10", "cifar10_budget", "cifar10_dcgan"),
        ahead_at_equal_cpu_time(
            cells, curves, "cifar10", "cifar10_budget", "cifar10_dcgan", machines
        ),
        no_collapse(cells, curves),
        health_quiet(health),
    ]
