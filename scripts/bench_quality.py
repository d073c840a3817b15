"""Quality at a fixed training budget: gan-lab's default experiments vs the classic recipe.

    GAN_DATA_DIR=/path/to/data python scripts/bench_quality.py --minutes 30 --samples 10000

For each dataset, gan-lab's experiment (Lightning, the experiment's precision and layout) and the
classic hand-written loop (scripts/classic_loop.py: the textbook DCGAN recipe, fp32, per-sample
torchvision transforms, the same G and D classes) each train for the same wall-clock budget on
this machine, one after the other. Then both are scored on the same real images:

- FID with the standard Inception (torch-fidelity's TF 2015-12-05 graph; ``--inception-weights``
  or ``$GAN_FID_WEIGHTS`` for offline machines), ``--samples`` generated images vs as many
  training images, samples from the EMA generator for gan-lab and from G for the classic loop;
- the in-domain classifier metrics (classifier FD, class coverage) when the dataset has one.

FID depends on the sample count (fewer samples: higher FID), so compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import classic_loop
from gan_lab.data.tensor_data import float_to_uint8
from gan_lab.metrics import ClassifierExtractor, InceptionExtractor, MetricSuite
from gan_lab.metrics.classifier import default_classifier_path

# dataset -> (gan-lab experiment, classic setup in classic_loop.SETUPS)
DEFAULT_RECIPES = {
    "mnist": ("mnist_dcgan", "dcgan32_mnist"),
    "cifar10": ("cifar10_dcgan", "dcgan32"),
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


def train_gan_lab(
    experiment: str, setup: classic_loop.Setup, seconds: float, workdir: str
) -> tuple[nn.Module, dict]:
    """The experiment as `gan-train experiment=...` runs it, stopped by Lightning's ``max_time``."""
    import datetime

    import hydra
    import lightning as L

    overrides = [
        f"experiment={experiment}",
        "callbacks=none",
        "logger=csv",
        "trainer.accelerator=cpu",
    ]
    overrides += ["trainer.max_steps=100000000", "+trainer.enable_progress_bar=false"]
    cfg = classic_loop.compose(setup, *overrides, output_dir=workdir)
    L.seed_everything(0, verbose=False)
    datamodule, model = hydra.utils.instantiate(cfg.data), hydra.utils.instantiate(cfg.model)
    datamodule.prepare_data()  # decoding is data preparation, not training time
    max_time = datetime.timedelta(seconds=seconds)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[], logger=False, max_time=max_time)
    start_wall, start_cpu = time.perf_counter(), cpu_seconds()
    trainer.fit(model, datamodule=datamodule)
    info = {
        "recipe": f"gan-lab experiment={experiment}",
        "precision": str(cfg.trainer.precision),
        "channels_last": bool(cfg.model.get("channels_last", False)),
        "g_steps": int(trainer.global_step),
        "wall_s": time.perf_counter() - start_wall,
        "cpu_s": cpu_seconds() - start_cpu,
    }
    return model.sampling_generator, info


def train_classic(setup: classic_loop.Setup, seconds: float) -> tuple[nn.Module, dict]:
    torch.manual_seed(0)
    gan = classic_loop.PlainGAN(*classic_loop.networks(setup), recipe="classic")
    start_wall, start_cpu = time.perf_counter(), cpu_seconds()
    steps = classic_loop.train_for(
        gan, classic_loop.forever(classic_loop.torchvision_loader(setup)), seconds
    )
    info = {
        "recipe": f"classic loop ({setup.name}: fp32, torchvision transforms, {setup.num_workers} workers)",
        "precision": "32-true",
        "channels_last": False,
        "g_steps": steps,
        "wall_s": time.perf_counter() - start_wall,
        "cpu_s": cpu_seconds() - start_cpu,
    }
    return gan.G, info


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


def real_uint8(setup: classic_loop.Setup, n: int) -> torch.Tensor:
    """A fixed random subset of the training split at the model's size (gan-lab's decoding)."""
    import hydra

    dm = hydra.utils.instantiate(classic_loop.compose(setup).data)
    train = dm.load_split("train")
    index = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:n]
    return train.images[index]


def score(
    dataset: str, real: torch.Tensor, fakes: dict[str, torch.Tensor], inception: InceptionExtractor
) -> dict[str, dict[str, Any]]:
    """FID (and the in-domain metrics when a classifier exists) of each fake set vs the same reals."""
    extractors: dict[str, Any] = {"inception": inception}
    names = ["fid"]
    classifier_path = default_classifier_path(dataset)
    if classifier_path.is_file():
        extractors["classifier"] = ClassifierExtractor.from_file(classifier_path)
        names += ["classifier_fd", "class_coverage"]
    real_features = MetricSuite(names, extractors).add_real(real)
    results = {}
    for name, images in fakes.items():
        suite = MetricSuite(names, extractors)
        for extractor, features in real_features.items():
            suite.add_real_features(extractor, features)
        suite.add_fake(images)
        results[name] = {k: r.as_dict() for k, r in suite.compute().items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--datasets", nargs="+", default=["mnist", "cifar10"], choices=sorted(DEFAULT_RECIPES)
    )
    parser.add_argument(
        "--minutes", type=float, required=True, help="wall-clock training budget per recipe"
    )
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
    parser.add_argument("--inception-weights", default=None, help="FID Inception weights (.pth)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    experiments = {d: e for d, (e, _) in DEFAULT_RECIPES.items()}
    experiments.update(dict(item.split("=", 1) for item in args.experiment))
    inception = InceptionExtractor(args.inception_weights)
    report: dict[str, Any] = {
        "minutes": args.minutes,
        "samples": args.samples,
        "threads": args.threads,
    }
    for dataset in args.datasets:
        setup = classic_loop.SETUPS[DEFAULT_RECIPES[dataset][1]]
        seconds = 60 * args.minutes
        with tempfile.TemporaryDirectory() as workdir:
            ours, ours_info = train_gan_lab(experiments[dataset], setup, seconds, workdir)
        print(f"[{dataset}] {ours_info}", flush=True)
        classic, classic_info = train_classic(setup, seconds)
        print(f"[{dataset}] {classic_info}", flush=True)
        start = time.perf_counter()
        latent = int(classic.latent_dim)
        fakes = {"gan-lab": generated_uint8(ours, args.samples, latent)}
        fakes["classic"] = generated_uint8(classic, args.samples, latent)
        metrics = score(dataset, real_uint8(setup, args.samples), fakes, inception)
        print(
            f"[{dataset}] scored {3 * args.samples} images in {time.perf_counter() - start:.0f}s",
            flush=True,
        )
        report[dataset] = {
            "gan-lab": {**ours_info, **metrics["gan-lab"]},
            "classic": {**classic_info, **metrics["classic"]},
        }
        print_table(report, [dataset])  # each dataset as soon as it is scored: long runs get cut
        if args.json:
            args.json.write_text(json.dumps(report, indent=1, default=str))
    print_table(report, args.datasets)


def print_table(report: dict[str, Any], datasets: list[str]) -> None:
    print(
        f"\nbudget {report['minutes']:g} wall-clock minutes per recipe, {report['threads']} threads; "
        f"FID: {report['samples']} generated vs {report['samples']} training images"
    )
    print(
        f"{'dataset':>8} {'recipe':>8} {'precision':>10} {'G steps':>8} {'CPU min':>8} {'FID':>8} "
        f"{'classifier FD':>14} {'classes hit':>12}"
    )
    for dataset in datasets:
        for name in ("gan-lab", "classic"):
            row = report[dataset][name]
            fid = row["fid"]["fid"]
            cfd = row.get("classifier_fd", {}).get("classifier_fd")
            hit = row.get("class_coverage", {}).get("classes_hit")
            print(
                f"{dataset:>8} {name:>8} {row['precision']:>10} {row['g_steps']:8d} {row['cpu_s'] / 60:8.1f} "
                f"{fid:8.1f} {'-' if cfd is None else f'{cfd:.2f}':>14} {'-' if hit is None else hit:>12}"
            )


if __name__ == "__main__":
    main()
