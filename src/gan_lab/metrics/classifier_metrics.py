"""Cheap in-domain metrics on the dataset's own classifier: a Fréchet distance in its feature
space, mode coverage of its predicted classes, and the accuracy of conditional samples.

Seconds on a CPU, so they run during training; not comparable to published FIDs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from gan_lab.metrics.inception_metrics import FrechetDistance
from gan_lab.metrics.registry import GeneratorMetric, MetricResult, register_metric


class ClassHistogram(Metric):
    """Counts of the classifier's predicted classes, and hits of the requested class (conditional)."""

    full_state_update = False

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.add_state("counts", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("hits", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("requested", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, requested: Tensor | None = None) -> None:
        pred = logits.argmax(dim=1)
        self.counts += torch.bincount(pred, minlength=self.num_classes).to(self.counts.device)
        if requested is not None:
            self.hits += (pred == requested.to(pred.device)).sum()
            self.requested += requested.numel()

    def compute(self) -> dict[str, Tensor]:
        return {"counts": self.counts, "hits": self.hits, "requested": self.requested}


def coverage_stats(counts: Tensor) -> dict[str, float]:
    """Classes hit (>= 1 sample) and KL(sample class distribution || uniform), in nats."""
    p = counts.double() / counts.sum().clamp(min=1)
    nonzero = p[p > 0]
    kl = float((nonzero * (nonzero * len(counts)).log()).sum())
    return {"classes_hit": float((counts > 0).sum()), "kl_to_uniform": kl}


@register_metric
class ClassifierFD(FrechetDistance):
    """Fréchet distance in the classifier's pooled-feature space."""

    name, space, label = (
        "classifier_fd",
        "classifier",
        "Fréchet distance in classifier feature space,",
    )


class _ClassHistogramMetric(GeneratorMetric):
    space = "classifier"

    def build(self, extractor: Any) -> Metric:
        return ClassHistogram(extractor.num_classes)

    def update_fake(self, features: Tensor, logits: Tensor, requested: Tensor | None) -> None:
        self.state.update(logits, requested)


@register_metric
class ClassCoverage(_ClassHistogramMetric):
    """Mode coverage: classes hit and KL(predicted class histogram || uniform), in nats."""

    name = "class_coverage"

    def compute(self, extractor: Any) -> MetricResult:
        counts = self.state.compute()["counts"].cpu()
        detail = f"classifier argmax histogram of {int(counts.sum())} samples; hit = >= 1 sample; KL in nats"
        return self.result(
            coverage_stats(counts), detail, extractor, extra={"histogram": counts.tolist()}
        )


@register_metric
class ClassAccuracy(_ClassHistogramMetric):
    """Conditional generators: the fraction of samples classified as their requested class."""

    name, conditional_only = "class_accuracy", True

    def compute(self, extractor: Any) -> MetricResult:
        stats = self.state.compute()
        requested = int(stats["requested"])
        detail = f"fraction of {requested} samples classified as their requested class"
        if requested == 0:
            reason = "the generator is unconditional (no requested classes)"
            return self.result({"class_accuracy": None}, detail, extractor, reason)
        return self.result({"class_accuracy": int(stats["hits"]) / requested}, detail, extractor)
