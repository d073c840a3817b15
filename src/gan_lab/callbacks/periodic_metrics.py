"""Metrics of the EMA generator every N generator steps or N kimg, logged under ``metrics/``.

Cheap in-domain classifier metrics by default (seconds on a CPU); Inception metrics can be
chosen too, at their cost. Under DDP each rank generates its share of ``n_samples`` (the shares
add up to exactly ``n_samples``) and adds its slice of the reference set; ``compute()`` reduces
the statistics across ranks, so every rank gets the same numbers and rank 0 logs them.

Nothing is computed until the first evaluation step (short runs pay nothing); with
``evaluate_at_end`` the final step is evaluated too, so every run ends with a metric (what
``callbacks.best_checkpoint`` and the run summary read). ``metrics/kimg`` is logged with every
evaluation, so curves can be drawn against kimg as well as G steps. When the dataset has no
classifier, classifier metrics are dropped with one warning.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from gan_lab.callbacks.evaluation_schedule import EvaluationSchedule
from gan_lab.callbacks.progress import training_progress
from gan_lab.errors import ConfigError
from gan_lab.metrics.classifier import default_classifier_path
from gan_lab.metrics.features import ClassifierExtractor, FeatureExtractor, InceptionExtractor
from gan_lab.metrics.reference import reference_subset
from gan_lab.metrics.registry import GeneratorMetric, build_metrics
from gan_lab.metrics.runner import add_generated, add_reference, rank_share
from gan_lab.metrics.suite import MetricSuite, flat_scalars

log = logging.getLogger(__name__)


class GeneratorMetrics(L.Callback):
    def __init__(
        self,
        metrics: list[str] | tuple[str, ...] = (
            "classifier_fd",
            "class_coverage",
            "class_accuracy",
        ),
        every_n_steps: int | None = 1000,
        every_n_kimg: float | None = None,
        evaluate_at_end: bool = True,
        n_samples: int = 2000,
        n_reference: int = 5000,
        reference_split: str = "train",
        batch_size: int = 250,
        classifier_path: str | None = None,
        inception_weights: str | None = None,
        cache_dir: str | None = None,
        metric_options: dict[str, dict[str, Any]] | None = None,
        seed: int = 0,
    ) -> None:
        self.schedule = EvaluationSchedule("callbacks.metrics", every_n_steps, every_n_kimg)
        if not isinstance(evaluate_at_end, bool):
            raise ConfigError("callbacks.metrics.evaluate_at_end", evaluate_at_end, "must be true or false")  # fmt: skip
        for key, n in (("n_samples", n_samples), ("n_reference", n_reference)):
            if n < 2:
                raise ConfigError(
                    f"callbacks.metrics.{key}", n, "must be >= 2 (a covariance needs two)"
                )
        self.chosen: list[GeneratorMetric] = build_metrics(
            list(metrics), "callbacks.metrics.metrics", metric_options
        )
        self.evaluate_at_end = evaluate_at_end
        self.n_samples, self.n_reference = n_samples, n_reference
        self.reference_split, self.batch_size, self.seed = reference_split, batch_size, seed
        self.classifier_path, self.inception_weights = classifier_path, inception_weights
        self.cache_dir = Path(cache_dir).expanduser() / "metrics" if cache_dir else None
        self.suite: MetricSuite | None = None
        self.disabled = False
        self.last_results: dict[str, float] = {}
        self._step_at_batch_start = 0

    # ------------------------------------------------------------------------------- setup
    def _extractors(self, trainer: L.Trainer) -> dict[str, FeatureExtractor]:
        extractors: dict[str, FeatureExtractor] = {}
        source = getattr(trainer.datamodule, "source", "unknown")
        if any(m.space == "classifier" for m in self.chosen):
            path = (
                Path(self.classifier_path).expanduser()
                if self.classifier_path
                else default_classifier_path(source)
            )
            if path.is_file():
                extractors["classifier"] = ClassifierExtractor.from_file(path)
            else:
                skipped = [m.name for m in self.chosen if m.space == "classifier"]
                rank_zero_warn(
                    f"callbacks.metrics: no classifier for data.source={source!r} ({path}); skipping "
                    f"{', '.join(skipped)}. Train one with "
                    "scripts/train_classifier.py and set callbacks.metrics.classifier_path"
                )
                self.chosen = [m for m in self.chosen if m.space != "classifier"]
        if any(m.space == "inception" for m in self.chosen):
            extractors["inception"] = InceptionExtractor(self.inception_weights)
        return extractors

    def _build(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        extractors = self._extractors(trainer)
        if not pl_module.num_classes:  # an unconditional generator requests no classes
            self.chosen = [m for m in self.chosen if not m.conditional_only]
        if not self.chosen:
            self.disabled = True
            return
        self.suite = MetricSuite(self.chosen, extractors, seed=self.seed).to(pl_module.device)
        dm = trainer.datamodule
        reference = reference_subset(dm.load_split(self.reference_split), self.n_reference)
        add_reference(
            self.suite, reference, dm.dataset_name, self.reference_split, self.cache_dir,
            trainer.global_rank, trainer.world_size, self.batch_size,
        )  # fmt: skip

    # ------------------------------------------------------------------------------- hooks
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.schedule.start(trainer.global_step, training_progress(trainer, pl_module).images_shown)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._step_at_batch_start = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        # only batches that took a G step (with n_critic > 1 most batches update D alone)
        if self.disabled or trainer.global_step == self._step_at_batch_start:
            return
        images = training_progress(trainer, pl_module).images_shown
        if self.schedule.due(trainer.global_step, images):
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        final = trainer.global_step
        if self.disabled or not self.evaluate_at_end or trainer.fast_dev_run or final == 0:
            return
        if final != self.schedule.last_step:  # the final weights were not scored yet
            self.evaluate(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return self.schedule.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.schedule.load_state_dict(state_dict)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Run on every rank (the reduction is collective); rank 0 logs."""
        start = time.perf_counter()
        if self.suite is None:
            self._build(trainer, pl_module)
            if self.suite is None:
                return {}
        progress = training_progress(trainer, pl_module)
        self.schedule.mark(trainer.global_step, progress.images_shown)
        self.suite.reset_fake()
        share = rank_share(self.n_samples, trainer.global_rank, trainer.world_size)
        # a different stream per rank and per step, the same one for every re-run of this step
        seed = self.seed + 1_000_003 * trainer.global_step + trainer.global_rank
        add_generated(self.suite, pl_module, share, self.batch_size, seed)
        values = flat_scalars(self.suite.compute())
        values["metrics/kimg"] = progress.kimg  # the x axis of FID-vs-kimg curves
        values["metrics/seconds"] = time.perf_counter() - start
        for key, value in values.items():
            trainer.callback_metrics[key] = torch.tensor(value)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(values, step=trainer.global_step)
            log.info(
                "g_step %d: %s",
                trainer.global_step,
                ", ".join(f"{k}={v:.4g}" for k, v in values.items()),
            )
        self.last_results = values
        return values
