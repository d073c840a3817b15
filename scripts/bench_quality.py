"""Quality at a fixed training budget: gan-lab's default experiments vs the classic recipe.

    GAN_DATA_DIR=/path/to/data python scripts/bench_quality.py --datasets mnist \
        --cpu-minutes 30 --samples 10000

For each dataset, gan-lab's experiment (Lightning, the experiment's precision and layout) and the
classic hand-written loop (scripts/classic_loop.py: the textbook DCGAN recipe, fp32, per-sample
torchvision transforms, the same G and D classes) each train for the same budget. The budget is
**CPU time** (the training process and its DataLoader workers), so it means the same on an idle
and on a busy machine; by default the recipes train side by side, one process and one torch
thread each. ``--steps`` budgets G steps instead (for "same experiment, same steps" comparisons,
e.g. ``--variant fp32=trainer.precision=32-true``). Then every recipe is scored on the same real
images:

- FID, KID and precision/recall (density/coverage in the JSON) with the standard Inception
  (torch-fidelity's TF 2015-12-05 graph; ``--inception-weights`` or ``$GAN_FID_WEIGHTS`` offline),
  ``--samples`` generated images vs as many
  training images (a fixed random subset, its features cached on disk), samples from the EMA
  generator for gan-lab and from G for the classic loop;
- the in-domain classifier metrics (classifier FD, class coverage) when the dataset has one.

FID depends on the sample count (fewer samples: higher FID), so compare rows of one run only.

Long budgets: ``--snapshot-minutes 30 60 90`` also saves each recipe's generator at those CPU marks
(scored as ``label@30min`` rows, with ``--snapshot-samples``), which shows whether a recipe
improves steadily or collapses. ``--keep DIR`` keeps the trained generators; the same command with
``--score-only`` scores them again without training (e.g. after a run trained with ``--no-fid``).
Each gan-lab run also leaves its final Lightning checkpoint there (``<dataset>-<label>.ckpt``: G, D,
EMA, optimizer states), the input of ``scripts/probe_precision.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import psutil
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import classic_loop
from gan_lab.data.transforms import float_to_uint8
from gan_lab.metrics import ClassifierExtractor, InceptionExtractor, MetricSuite
from gan_lab.metrics.classifier import default_classifier_path
from gan_lab.metrics.runner import add_reference, reference_subset

# dataset -> (gan-lab experiment, classic setup in classic_loop.SETUPS)
DEFAULT_RECIPES = {
    "mnist": ("mnist_dcgan", "dcgan32_mnist"),
    "cifar10": ("cifar10_dcgan", "dcgan32"),
}


@dataclass(frozen=True)
class Budget:
    """How long each recipe trains: CPU seconds, or a number of G steps."""

    cpu_seconds: float | None = None
    steps: int | None = None
    # CPU-minute marks (below the budget) where a copy of the sampling generator is also scored
    snapshot_minutes: tuple[float, ...] = ()

    def describe(self) -> str:
        if self.steps is not None:
            return f"{self.steps} G steps per recipe"
        return f"{self.cpu_seconds / 60:g} CPU-minutes per recipe"


@dataclass(frozen=True)
class Recipe:
    """One training run to score: gan-lab with overrides, or the classic loop."""

    label: str
    dataset: str
    setup: str  # classic_loop.SETUPS key: the networks and the classic loader
    experiment: str | None  # None: the classic loop
    overrides: tuple[str, ...] = field(default_factory=tuple)


def tree_cpu_seconds() -> float:
    """CPU time of this process, its finished children and its live ones (DataLoader workers)."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:4])  # user, system, children_user, children_system
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # exited between the listing and the read
            total += sum(child.cpu_times()[:2])
    return total


def save_generator(generator: nn.Module, info: dict[str, Any], out: Path) -> Path:
    torch.save({"generator": generator, "info": info}, out)
    return out


def save_gan_lab(module: Any, info: dict[str, Any], out: Path) -> Path:
    """The sampling (EMA) generator, scored; G's raw weights beside it (``*.raw.pt``) to inspect."""
    if module.sampling_generator is not module.generator:
        save_generator(module.generator, info, out.with_suffix(".raw.pt"))
    return save_generator(module.sampling_generator, info, out)


def snapshot_path(out: Path, minutes: float) -> Path:
    return out.with_name(f"{out.stem}@{minutes:g}min{out.suffix}")


def _cpu_budget_callback(
    start: float, budget: Budget, out: Path, info: dict[str, Any], saved: list[Path]
) -> Any:
    import lightning as L

    class CpuBudget(L.Callback):
        """Saves snapshots at the CPU marks, ends fit after the batch that spends the budget
        (Lightning's max_time is wall time)."""

        def __init__(self) -> None:
            self.marks = sorted(
                m
                for m in budget.snapshot_minutes
                if budget.cpu_seconds is None or 60 * m < budget.cpu_seconds
            )

        def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
            spent = tree_cpu_seconds() - start
            while self.marks and spent >= 60 * self.marks[0]:
                minutes = self.marks.pop(0)
                row = {**info, "g_steps": int(trainer.global_step), "cpu_s": spent}
                saved.append(save_gan_lab(pl_module, row, snapshot_path(out, minutes)))
            if budget.cpu_seconds is not None and spent >= budget.cpu_seconds:
                trainer.should_stop = True

    return CpuBudget()


def train_gan_lab(recipe: Recipe, budget: Budget, workdir: str, out: Path) -> list[Path]:
    """The experiment as `gan-train experiment=... <overrides>` runs it, without logger/callbacks.

    Saves the sampling (EMA) generator at each snapshot mark and at the end; returns the files.
    """
    import hydra
    import lightning as L

    from gan_lab.trainer_args import trainer_config

    setup = classic_loop.SETUPS[recipe.setup]
    # the recipe's experiment replaces the setup's (same networks for the default recipes)
    own = tuple(o for o in setup.overrides if not o.startswith("experiment="))
    setup = replace(setup, overrides=own)
    steps = budget.steps if budget.steps is not None else 100_000_000
    cfg = classic_loop.compose(
        setup,
        f"experiment={recipe.experiment}",
        "callbacks=none",
        "logger=csv",
        "trainer.accelerator=cpu",
        f"trainer.max_steps={steps}",
        "trainer.max_kimg=null",  # the budget is CPU time, counted by the callback below
        "+trainer.enable_progress_bar=false",
        *recipe.overrides,
        output_dir=workdir,
    )
    L.seed_everything(int(cfg.seed), verbose=False)
    datamodule, model = hydra.utils.instantiate(cfg.data), hydra.utils.instantiate(cfg.model)
    datamodule.prepare_data()  # decoding is data preparation, not training time
    trainer_args = trainer_config(cfg)  # precision=auto resolved: the row says what ran
    info: dict[str, Any] = {
        "recipe": " ".join([f"gan-lab experiment={recipe.experiment}", *recipe.overrides]),
        "precision": str(trainer_args.precision),
    }
    saved: list[Path] = []
    start_wall, start_cpu = time.perf_counter(), tree_cpu_seconds()
    callback = _cpu_budget_callback(start_cpu, budget, out, info, saved)
    # no per-epoch checkpoints inside the budget; the final one is saved after it (below)
    trainer = hydra.utils.instantiate(
        trainer_args, callbacks=[callback], logger=False, enable_checkpointing=False
    )
    trainer.fit(model, datamodule=datamodule)
    info["g_steps"] = int(trainer.global_step)
    info["wall_s"] = time.perf_counter() - start_wall
    info["cpu_s"] = tree_cpu_seconds() - start_cpu
    # G, D, EMA and optimizer states, e.g. for scripts/probe_precision.py
    trainer.save_checkpoint(out.with_suffix(".ckpt"))
    return [*saved, save_gan_lab(model, info, out)]


def train_classic(recipe: Recipe, budget: Budget, out: Path) -> list[Path]:
    """The classic loop, trained in segments between the snapshot marks; returns the files."""
    setup = classic_loop.SETUPS[recipe.setup]
    torch.manual_seed(0)
    gan = classic_loop.PlainGAN(*classic_loop.networks(setup), recipe="classic")
    batches = classic_loop.forever(classic_loop.torchvision_loader(setup))
    info: dict[str, Any] = {
        "recipe": f"classic loop ({setup.name}: fp32, torchvision transforms, "
        f"{setup.num_workers} workers)",
        "precision": "32-true",
    }
    saved: list[Path] = []
    start_wall, start_cpu = time.perf_counter(), tree_cpu_seconds()
    if budget.steps is not None:
        for _ in range(budget.steps):
            gan.step(next(batches))
        steps = budget.steps
    else:
        marks = sorted(m for m in budget.snapshot_minutes if 60 * m < budget.cpu_seconds)
        steps = 0
        for minutes in [*marks, None]:  # None: the end of the budget, saved below
            until = budget.cpu_seconds if minutes is None else 60 * minutes
            spent = tree_cpu_seconds() - start_cpu
            steps += classic_loop.train_for(gan, batches, until - spent, clock=tree_cpu_seconds)
            if minutes is not None:
                row = {**info, "g_steps": steps, "cpu_s": tree_cpu_seconds() - start_cpu}
                saved.append(save_generator(gan.G, row, snapshot_path(out, minutes)))
    info["g_steps"] = steps
    info["wall_s"] = time.perf_counter() - start_wall
    info["cpu_s"] = tree_cpu_seconds() - start_cpu
    return [*saved, save_generator(gan.G, info, out)]


def train_recipe(recipe: Recipe, budget: Budget, threads: int, out: Path) -> list[Path]:
    """Child-process entry: train one recipe, save its sampling generator(s) and figures."""
    torch.set_num_threads(threads)
    if recipe.experiment is None:
        saved = train_classic(recipe, budget, out)
    else:
        with tempfile.TemporaryDirectory() as workdir:
            saved = train_gan_lab(recipe, budget, workdir, out)
    print(
        f"[{recipe.dataset}] {recipe.label}: {torch.load(out, weights_only=False)['info']}",
        flush=True,
    )
    return saved


@torch.no_grad()
def generated_uint8(
    generator: nn.Module, n: int, latent_dim: int, batch: int = 250
) -> torch.Tensor:
    """``n`` samples in eval mode (BatchNorm running statistics), as uint8 like saved images."""
    generator.eval()
    g = torch.Generator().manual_seed(1234)
    chunks = [
        generator(torch.randn(min(batch, n - i), latent_dim, generator=g))
        for i in range(0, n, batch)
    ]
    return float_to_uint8(torch.cat(chunks))


def score(
    dataset: str,
    setup: classic_loop.Setup,
    fakes: dict[str, torch.Tensor],
    inception: InceptionExtractor | None,
    cache_dir: Path,
) -> dict[str, dict[str, Any]]:
    """FID (and the in-domain metrics when a classifier exists) of each fake set vs as many reals.

    Sets of one size share one reference subset (FID depends on the sample count).
    """
    import hydra

    extractors: dict[str, Any] = {"inception": inception} if inception else {}
    # KID is unbiased, so small snapshot sets compare; recall/coverage expose mode collapse
    names = ["fid", "kid", "precision_recall"] if inception else []
    classifier_path = default_classifier_path(dataset)
    if classifier_path.is_file():
        extractors["classifier"] = ClassifierExtractor.from_file(classifier_path)
        names += ["classifier_fd", "class_coverage"]
    if not names:
        return {name: {} for name in fakes}
    datamodule = hydra.utils.instantiate(classic_loop.compose(setup).data)
    train = datamodule.load_split("train")
    results = {}
    for n in sorted({len(images) for images in fakes.values()}):  # one reference per size
        suite = MetricSuite(names, extractors)
        add_reference(
            suite, reference_subset(train, n), datamodule.dataset_name, "train", cache_dir
        )
        for name, images in fakes.items():
            if len(images) == n:
                suite.add_fake(images)
                results[name] = {k: r.as_dict() for k, r in suite.compute().items()}
                suite.reset_fake()  # keeps the reference for the next set
    return results


def save_grids(fakes: dict[str, torch.Tensor], dataset: str, folder: Path) -> None:
    """The first 64 scored samples of each row as an 8x8 PNG: what the numbers look like."""
    from torchvision.utils import save_image

    folder.mkdir(parents=True, exist_ok=True)
    for label, images in fakes.items():
        save_image(images[:64].float() / 255, folder / f"{dataset}-{label}.png", nrow=8, padding=1)


def parse_recipes(args: argparse.Namespace, dataset: str) -> list[Recipe]:
    experiment, setup = DEFAULT_RECIPES[dataset]
    experiment = dict(item.split("=", 1) for item in args.experiment).get(dataset, experiment)
    variants = args.variant or ["gan-lab="]
    recipes = []
    for label, overrides in (item.split("=", 1) for item in variants):
        # a variant may name its own experiment: "sngan=experiment=cifar10_sngan model.n_critic=1"
        own = dict(o.split("=", 1) for o in overrides.split() if o.startswith("experiment="))
        rest = tuple(o for o in overrides.split() if not o.startswith("experiment="))
        recipes.append(Recipe(label, dataset, setup, own.get("experiment", experiment), rest))
    if args.classic:
        recipes.append(Recipe("classic", dataset, setup, None))
    if args.only:
        unknown = sorted(set(args.only) - {r.label for r in recipes})
        if unknown:
            raise SystemExit(
                f"--only {' '.join(unknown)}: no such recipe; the recipes are "
                f"{', '.join(r.label for r in recipes)}"
            )
        recipes = [r for r in recipes if r.label in args.only]
    return recipes


def run_dataset(
    dataset: str,
    args: argparse.Namespace,
    budget: Budget,
    inception: InceptionExtractor | None,
    workdir: Path,
) -> dict[str, Any]:
    """Train the dataset's recipes (unless --score-only) and score every saved generator."""
    recipes = parse_recipes(args, dataset)
    outs = {r.label: workdir / f"{dataset}-{r.label}.pt" for r in recipes}
    if not args.score_only:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(train_recipe, r, budget, args.threads, outs[r.label]) for r in recipes
            ]
            for f in futures:
                f.result()
    saved = {}  # row label -> (saved generator and figures, samples): snapshots, then the final
    for r in recipes:
        if args.snapshot_samples:
            for path in sorted(workdir.glob(f"{dataset}-{r.label}@*min.pt")):
                label = r.label + path.stem.removeprefix(f"{dataset}-{r.label}")
                saved[label] = (path, args.snapshot_samples)
        if not outs[r.label].is_file():
            raise SystemExit(f"--score-only: {outs[r.label]} is missing; train it first")
        saved[r.label] = (outs[r.label], args.samples)
    loaded = {label: torch.load(path, weights_only=False) for label, (path, _) in saved.items()}
    torch.set_num_threads(args.score_threads)
    start = time.perf_counter()
    fakes = {
        label: generated_uint8(s["generator"], saved[label][1], int(s["generator"].latent_dim))
        for label, s in loaded.items()
    }
    if args.grids is not None:
        save_grids(fakes, dataset, args.grids)
    metrics = score(
        dataset, classic_loop.SETUPS[recipes[0].setup], fakes, inception, args.cache_dir
    )
    print(f"[{dataset}] scored in {time.perf_counter() - start:.0f}s", flush=True)
    return {
        label: {**s["info"], "samples": saved[label][1], **metrics[label]}
        for label, s in loaded.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--datasets", nargs="+", default=["mnist", "cifar10"], choices=sorted(DEFAULT_RECIPES)
    )
    budget_group = parser.add_mutually_exclusive_group(required=True)
    budget_group.add_argument(
        "--cpu-minutes", type=float, help="training budget per recipe, in CPU-minutes"
    )
    budget_group.add_argument("--steps", type=int, help="training budget per recipe, in G steps")
    parser.add_argument(
        "--samples", type=int, default=10000, help="generated and real images for FID"
    )
    parser.add_argument(
        "--experiment",
        action="append",
        default=[],
        metavar="DATASET=NAME",
        help="gan-lab experiment per dataset (default: mnist=mnist_dcgan, cifar10=cifar10_dcgan)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=OVERRIDES",
        help="a gan-lab run of the experiment with these space-separated overrides "
        "(repeatable; default: one run labelled gan-lab with none)",
    )
    parser.add_argument(
        "--no-classic", dest="classic", action="store_false", help="skip the classic loop"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="LABEL",
        help="train / score only these recipes (e.g. `--only classic --score-only` scores one "
        "recipe while another still trains)",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="recipes trained at once (one process each)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training job")
    parser.add_argument("--score-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--inception-weights", default=None, help="FID Inception weights (.pth)")
    parser.add_argument(
        "--no-fid",
        dest="fid",
        action="store_false",
        help="in-domain classifier metrics only (Inception runs ~10 images/s on a 2-core CPU)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("GAN_CACHE_DIR", Path.home() / ".cache" / "gan_lab"))
        / "metrics",
        help="where reference features are cached",
    )
    parser.add_argument(
        "--snapshot-minutes",
        type=float,
        nargs="+",
        default=[],
        help="CPU-minute marks where each recipe's generator is also saved and scored",
    )
    parser.add_argument(
        "--snapshot-samples",
        type=int,
        default=None,
        help="FID samples for the snapshots (default: --samples; 0: save them, score none)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="save the trained generators here (default: a temporary folder)",
    )
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="score the generators a previous run saved in --keep, without training",
    )
    parser.add_argument(
        "--grids", type=Path, default=None, help="save an 8x8 grid of each row's samples here"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if args.snapshot_samples is None:
        args.snapshot_samples = args.samples
    if args.score_only and args.keep is None:
        parser.error("--score-only needs --keep DIR, the folder a previous run saved to")
    budget = Budget(
        cpu_seconds=None if args.cpu_minutes is None else 60 * args.cpu_minutes,
        steps=args.steps,
        snapshot_minutes=tuple(args.snapshot_minutes),
    )
    inception = InceptionExtractor(args.inception_weights) if args.fid else None
    report: dict[str, Any] = {
        "budget": asdict(budget),
        "samples": args.samples,
        "threads_per_job": args.threads,
        "jobs": args.jobs,
    }
    with contextlib.ExitStack() as stack:
        if args.keep is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            workdir = args.keep
            workdir.mkdir(parents=True, exist_ok=True)
        for dataset in args.datasets:
            report[dataset] = run_dataset(dataset, args, budget, inception, workdir)
            print_table(report, budget, [dataset])  # each dataset as soon as it is scored
            if args.json:
                args.json.write_text(json.dumps(report, indent=1, default=str))
    print_table(report, budget, args.datasets)


def print_table(report: dict[str, Any], budget: Budget, datasets: list[str]) -> None:
    print(
        f"\nbudget {budget.describe()}, {report['jobs']} at once, {report['threads_per_job']} "
        "torch thread(s) each; FID: `samples` generated vs as many training images"
    )
    print(
        f"{'dataset':>8} {'recipe':>18} {'precision':>10} {'G steps':>8} {'CPU min':>8} "
        f"{'wall min':>8} {'samples':>8} {'FID':>8} {'KID x1e3':>9} {'prec':>5} {'recall':>6} "
        f"{'classifier FD':>14} {'classes hit':>12}"
    )
    for dataset in datasets:
        for name, row in report[dataset].items():
            fid = row.get("fid", {}).get("fid", float("nan"))
            kid = 1e3 * row.get("kid", {}).get("kid", float("nan"))
            pr = row.get("precision_recall", {})
            precision, recall = pr.get("precision", float("nan")), pr.get("recall", float("nan"))
            cfd = row.get("classifier_fd", {}).get("classifier_fd")
            hit = row.get("class_coverage", {}).get("classes_hit")
            print(
                f"{dataset:>8} {name:>18} {row['precision']:>10} {row['g_steps']:8d} "
                f"{row['cpu_s'] / 60:8.1f} {row.get('wall_s', float('nan')) / 60:8.1f} "
                f"{row['samples']:8d} {fid:8.2f} {kid:9.2f} {precision:5.2f} {recall:6.2f} "
                f"{'-' if cfd is None else f'{cfd:.2f}':>14} {'-' if hit is None else hit:>12}"
            )


if __name__ == "__main__":
    main()
