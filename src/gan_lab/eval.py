"""`gan-eval ckpt_path=... metrics=[fid,kid]`: metrics of a checkpoint, printed and written as JSON.

``images=DIR`` scores a folder of images instead (folder_scoring.py), against ``data=...`` or
against another folder (``reference=DIR2``).

Samples come from the EMA generator (what papers report); the reference images are the
``reference_split`` of the dataset the checkpoint was trained on. With ``compare_split=test``
the "generated" side is replaced by real images of that split (no checkpoint needed, e.g.
``gan-eval data=cifar10 data.path=... compare_split=test``): the real-vs-real baseline.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from gan_lab.errors import ConfigError, UserError, find_user_error, run_cli
from gan_lab.folder_scoring import (
    ScoredFolder,
    describe,
    load_scored_folder,
    scoring_shape,
)
from gan_lab.hydra_errors import run_hydra_entry
from gan_lab.metrics.classifier import default_classifier_path
from gan_lab.metrics.features import ClassifierExtractor, FeatureExtractor, InceptionExtractor
from gan_lab.metrics.reference import reference_subset
from gan_lab.metrics.registry import GeneratorMetric, build_metrics, metric_class
from gan_lab.metrics.runner import add_generated, add_reference
from gan_lab.metrics.suite import MetricSuite
from gan_lab.preflight_hook import preflight_eval
from gan_lab.train import CONFIG_PATH
from gan_lab.trained_model import build_datamodule, load_trained_gan, pick_device

log = logging.getLogger(__name__)


def classifier_file(path: str | None, source: str) -> Path:
    """The configured classifier, else the committed one of the dataset; a clear error if none."""
    candidate = Path(path).expanduser() if path else default_classifier_path(source)
    if not candidate.is_file():
        raise ConfigError(
            "classifier_path",
            path,
            f"no classifier for data.source={source!r} at {candidate}; train one with "
            f"scripts/train_classifier.py or choose metrics without classifier_* / class_*",
        )
    return candidate


def build_extractors(
    metrics: list[GeneratorMetric],
    source: str,
    inception_weights: str | None,
    classifier_path: str | None,
    batch_size: int,
) -> dict[str, FeatureExtractor]:
    """The networks of the feature spaces the chosen metrics read."""
    spaces = {m.space for m in metrics}
    extractors: dict[str, FeatureExtractor] = {}
    if "inception" in spaces:
        extractors["inception"] = InceptionExtractor(
            inception_weights, batch_size=min(batch_size, 50)
        )
    if "classifier" in spaces:
        extractors["classifier"] = ClassifierExtractor.from_file(
            classifier_file(classifier_path, source)
        )
    return extractors


def chosen_metrics(cfg: DictConfig) -> list[GeneratorMetric]:
    """The ``metrics`` group: each entry built from its ``_target_`` with its options."""
    chosen = cfg.get("metrics") or {}
    metrics: list[GeneratorMetric] = []
    for name, node in chosen.items():
        options = OmegaConf.to_container(node, resolve=True) if node else {}
        try:
            if "_target_" in options:
                metric = hydra.utils.instantiate(options)
            else:  # e.g. +metrics.fid={} on the command line: the registered class
                metric = metric_class(name, "metrics")(**options)
        except (TypeError, InstantiationException) as err:  # an option the class does not take
            if find_user_error(err) is not None:
                raise
            cause = err.__cause__ or err  # Hydra wraps the constructor's TypeError
            raise ConfigError(
                f"metrics.{name}", options, f"the options do not fit: {cause}"
            ) from None
        if not isinstance(metric, GeneratorMetric) or metric.name != name:
            raise ConfigError(
                f"metrics.{name}._target_",
                options.get("_target_"),
                f"must name the registered metric class of {name!r}",
            )
        metrics.append(metric)
    return build_metrics(metrics)


def add_reference_side(
    cfg: DictConfig, suite: MetricSuite, datamodule: Any | None, shape: tuple[int, int]
) -> tuple[dict[str, Any], ScoredFolder | None]:
    """The dataset's ``reference_split`` (or the ``reference`` folder) into the suite, cached."""
    cache_dir = Path(cfg.cache_dir).expanduser() / "metrics" if cfg.cache_dir else None
    if cfg.get("reference"):
        folder = load_scored_folder(cfg.reference, "reference", *shape, cfg.resize_filter)
        add_reference(
            suite, folder.images, folder.dataset_key, "folder", cache_dir, batch_size=cfg.batch_size
        )
        return {"split": "folder", **describe(folder)}, folder
    reference = reference_subset(datamodule.load_split(cfg.reference_split), cfg.n_reference)
    add_reference(
        suite,
        reference,
        datamodule.dataset_name,
        cfg.reference_split,
        cache_dir,
        batch_size=cfg.batch_size,
    )
    return {"split": cfg.reference_split, "n": len(reference)}, None


def add_generated_side(
    cfg: DictConfig,
    suite: MetricSuite,
    checkpoint: Any | None,
    datamodule: Any | None,
    shape: tuple[int, int],
) -> tuple[dict[str, Any], ScoredFolder | None]:
    """EMA samples of the checkpoint, the ``images`` folder, or real images of ``compare_split``."""
    if checkpoint is not None:
        n = add_generated(suite, checkpoint.module, cfg.n_samples, cfg.batch_size, cfg.seed)
        source = "EMA generator" if checkpoint.module.ema is not None else "generator (no EMA)"
        return {"n": n, "from": source, "seed": cfg.seed}, None
    if cfg.get("images"):
        folder = load_scored_folder(cfg.images, "images", *shape, cfg.resize_filter)
        for chunk in folder.images.images.split(cfg.batch_size):
            suite.add_fake(chunk)
        return {"from": "image folder", **describe(folder)}, folder
    split = cfg.compare_split
    compare = reference_subset(datamodule.load_split(split), cfg.n_samples, seed=cfg.seed + 1)
    for chunk in compare.images.split(cfg.batch_size):
        suite.add_fake(chunk)
    return {"n": len(compare), "from": f"real {split} split", "seed": cfg.seed}, None


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Compute the chosen metrics; returns (and writes) the JSON report."""
    preflight_eval(cfg)  # options, folders, output file, checkpoint: before any work or write
    metrics = chosen_metrics(cfg)
    real_only = cfg.get("compare_split") or cfg.get("images")
    checkpoint = (
        None if real_only else load_trained_gan(cfg.ckpt_path, cfg.device, cfg.get("run_dir"))
    )
    data_cfg = checkpoint.run_config["data"] if checkpoint else cfg.get("data")
    if data_cfg is None and not cfg.get("reference"):
        raise UserError(
            "images= and compare_split need a dataset: add data=<mnist|cifar10|image_folder> "
            "(and data.path=...), or reference=<folder> to compare two folders"
        )
    overrides = {"data_dir": cfg.data_dir, "cache_dir": cfg.cache_dir, "path": cfg.get("data_path")}
    datamodule = build_datamodule(data_cfg, overrides) if data_cfg is not None else None
    shape = scoring_shape(cfg, datamodule)
    extractors = build_extractors(
        metrics,
        datamodule.source if datamodule is not None else "image_folder",
        cfg.inception_weights,
        cfg.classifier_path,
        cfg.batch_size,
    )
    suite = MetricSuite(metrics, extractors, seed=int(cfg.seed)).to(pick_device(cfg.device))
    reference, reference_folder = add_reference_side(cfg, suite, datamodule, shape)
    samples, images_folder = add_generated_side(cfg, suite, checkpoint, datamodule, shape)
    results = {name: result.as_dict() for name, result in suite.compute().items()}
    for side, folder in (("images", images_folder), ("reference", reference_folder)):
        for entry in results.values():
            entry["protocol"] += f"; {side} folder: {folder.protocol}" if folder else ""
    report = {
        "checkpoint": str(checkpoint.path) if checkpoint else None,
        "global_step": checkpoint.global_step if checkpoint else None,
        "dataset": datamodule.dataset_name if datamodule else f"folder:{reference_folder.path}",
        "samples": samples,
        "reference": reference,
        "metrics": results,
    }
    print_report(report)
    out = Path(cfg.output_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    log.info("wrote %s", out)
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"{report['dataset']}: {report['samples']['n']} samples ({report['samples']['from']}) vs "
          f"{report['reference']['n']} {report['reference']['split']} images")  # fmt: skip
    for name, entry in report["metrics"].items():
        numbers = {
            k: v for k, v in entry.items() if k not in ("protocol", "unavailable", "histogram")
        }
        shown = ", ".join(f"{k}={'n/a' if v is None else f'{v:.6g}'}" for k, v in numbers.items())
        print(
            f"  {name:15s} {shown}"
            + (f"  [unavailable: {entry['unavailable']}]" if "unavailable" in entry else "")
        )
        print(f"  {'':15s} protocol: {entry['protocol']}")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
def hydra_main(cfg: DictConfig) -> Any:
    log.debug("config:\n%s", OmegaConf.to_yaml(cfg))
    return run_cli("gan-eval", evaluate, cfg)


def main() -> Any:
    """The ``gan-eval`` command: Hydra's composition errors, too, are one line and exit code 2."""
    return run_hydra_entry("gan-eval", hydra_main, CONFIG_PATH)


if __name__ == "__main__":
    main()
