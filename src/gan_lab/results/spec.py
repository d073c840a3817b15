"""The results spec: which run directory holds which recipe, and the kimg budgets to report.

A YAML file (docs/results_spec.yaml) with a list of runs; each run is one recipe trained once::

    machine: "Intel(R) Xeon(R) Processor, avx512_bf16, no amx_bf16"   # optional, all runs
    runs:
      - id: mnist_budget            # unique; defaults to the recipe name
        dataset: mnist              # mnist | cifar10
        recipe: mnist_budget        # the experiment name
        run_dir: /work/runs/mnist_budget
        threads: 1                  # torch threads the run used: CPU-minutes = wall x threads
        budgets_kimg: [500, 1000]   # optional; default per dataset (MNIST 500, 1000; CIFAR-10 1000, 3000)
        machine: ...                # optional, this run only
        samples: 2000               # optional: this run's cells at 2k vs 2k (default: --samples)
      - id: mnist_budget_seed2
        dataset: mnist
        recipe: mnist_budget
        run_dir: /work/runs/mnist_budget_seed2
        threads: 1
        repeat_of: mnist_budget     # a second seed of that cell: shown beside it as the spread
        overrides: [data_path=/data/cifar10-jpg]   # optional: keys for both gan-eval and gan-sample
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gan_lab.errors import UserError

DATASETS = ("mnist", "cifar10")
DEFAULT_BUDGETS_KIMG: dict[str, tuple[float, ...]] = {
    "mnist": (500.0, 1000.0),
    "cifar10": (1000.0, 3000.0),
}
RUN_KEYS = {
    "id", "dataset", "recipe", "run_dir", "threads", "budgets_kimg", "repeat_of", "machine",
    "overrides", "samples",
}  # fmt: skip


class SpecError(UserError):
    """The results spec names a bad value: the message says which run, key and fix."""


@dataclass(frozen=True)
class RunSpec:
    """One training run of one recipe (a table cell per budget)."""

    id: str
    dataset: str
    recipe: str
    run_dir: Path
    threads: int
    budgets_kimg: tuple[float, ...]
    repeat_of: str | None = None
    machine: str | None = None
    overrides: tuple[str, ...] = ()  # for gan-eval and gan-sample (data_path, data_dir, device)
    # EMA samples (= training images) per cell of this run; None: the build's --samples. Fewer
    # where Inception is too slow for 10k on the machine at hand (the cell shows its count)
    samples: int | None = None


@dataclass(frozen=True)
class ResultsSpec:
    path: Path
    runs: tuple[RunSpec, ...]
    machine: str | None = None

    def main_runs(self) -> list[RunSpec]:
        """The first seed of every cell (repeats excluded), in spec order."""
        return [r for r in self.runs if r.repeat_of is None]

    def repeats_of(self, run_id: str) -> list[RunSpec]:
        return [r for r in self.runs if r.repeat_of == run_id]


def _run_spec(entry: Any, index: int, base: Path) -> RunSpec:
    where = f"runs[{index}]"
    if not isinstance(entry, dict):
        raise SpecError(f"{where} must be a mapping with dataset, recipe, run_dir, threads")
    unknown = sorted(set(entry) - RUN_KEYS)
    if unknown:
        raise SpecError(f"{where} has unknown keys {unknown}; allowed: {sorted(RUN_KEYS)}")
    for key in ("dataset", "recipe", "run_dir", "threads"):
        if entry.get(key) in (None, ""):
            raise SpecError(
                f"{where}.{key} is missing; every run needs dataset, recipe, run_dir, threads"
            )
    dataset = str(entry["dataset"])
    if dataset not in DATASETS:
        raise SpecError(
            f"{where}.dataset={dataset!r} is invalid: choose one of {', '.join(DATASETS)}"
        )
    threads = entry["threads"]
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise SpecError(
            f"{where}.threads={threads!r} is invalid: the torch threads of the run, an integer >= 1"
        )
    budgets = entry.get("budgets_kimg", DEFAULT_BUDGETS_KIMG[dataset])
    if (
        not isinstance(budgets, list | tuple)
        or not budgets
        or not all(
            isinstance(b, int | float) and not isinstance(b, bool) and b > 0 for b in budgets
        )
    ):
        raise SpecError(
            f"{where}.budgets_kimg={budgets!r} is invalid: a list of kimg > 0, e.g. [500, 1000]"
        )
    overrides = entry.get("overrides") or []
    if not isinstance(overrides, list) or not all(
        isinstance(o, str) and "=" in o for o in overrides
    ):
        raise SpecError(f"{where}.overrides={overrides!r} is invalid: a list of key=value strings")
    samples = entry.get("samples")
    if samples is not None and (
        not isinstance(samples, int) or isinstance(samples, bool) or samples < 2
    ):
        raise SpecError(
            f"{where}.samples={samples!r} is invalid: EMA samples per cell, an integer >= 2"
        )
    run_dir = Path(str(entry["run_dir"])).expanduser()
    return RunSpec(
        id=str(entry.get("id") or entry["recipe"]),
        dataset=dataset,
        recipe=str(entry["recipe"]),
        run_dir=(run_dir if run_dir.is_absolute() else base / run_dir).resolve(),
        threads=threads,
        budgets_kimg=tuple(sorted(float(b) for b in budgets)),
        repeat_of=str(entry["repeat_of"]) if entry.get("repeat_of") else None,
        machine=str(entry["machine"]) if entry.get("machine") else None,
        overrides=tuple(overrides),
        samples=samples,
    )


def load_spec(path: str | Path) -> ResultsSpec:
    """Read and check the spec; relative run_dirs are relative to the spec file's folder."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"results spec {path} does not exist; pass --spec docs/results_spec.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(
            f"results spec {path} is not valid YAML: {str(err).splitlines()[0]}"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not data["runs"]:
        raise SpecError(f"results spec {path} needs a non-empty list under 'runs:'")
    runs = tuple(_run_spec(e, i, path.parent) for i, e in enumerate(data["runs"]))
    ids = [r.id for r in runs]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise SpecError(
            f"results spec {path}: run ids {duplicated} appear twice; give each run a unique id"
        )
    by_id = {r.id: r for r in runs}
    for r in runs:
        if r.repeat_of is None:
            continue
        target = by_id.get(r.repeat_of)
        if target is None or target.repeat_of is not None:
            raise SpecError(
                f"run {r.id}: repeat_of={r.repeat_of!r} must name a first-seed run id of the spec"
            )
        if (target.dataset, target.recipe) != (r.dataset, r.recipe):
            raise SpecError(f"run {r.id}: repeat_of={r.repeat_of!r} is a different dataset/recipe")
    return ResultsSpec(path, runs, str(data["machine"]) if data.get("machine") else None)
