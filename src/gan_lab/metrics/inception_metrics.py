"""FID, KID and the Inception Score: torchmetrics' implementations over features computed once.

The features come from :class:`gan_lab.metrics.features.InceptionExtractor` (shared by every
Inception metric of a suite) and reach torchmetrics through :class:`PassThrough`, so each image
goes through the network once however many metrics read it.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from torch import Tensor
from torchmetrics import Metric
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from gan_lab.metrics.features import PassThrough
from gan_lab.metrics.registry import GeneratorMetric, MetricResult, register_metric, sample_counts


class FrechetDistance(GeneratorMetric):
    """Fréchet distance between Gaussians fitted to real and generated features (any space)."""

    needs_real = True
    label: ClassVar[str]  # how the protocol names it

    def build(self, extractor: Any) -> Metric:
        return FrechetInceptionDistance(
            PassThrough(extractor.num_features), reset_real_features=False
        )

    def update_fake(self, features: Tensor, logits: Tensor, requested: Tensor | None) -> None:
        self.state.update(features.double(), real=False)

    def compute(self, extractor: Any) -> MetricResult:
        value = float(self.state.compute())
        n_real, n_fake = sample_counts(self.state)
        detail = f"{self.label} n_real={n_real}, n_fake={n_fake}"
        return self.result({self.name: value}, detail, extractor)


@register_metric
class FID(FrechetDistance):
    """Fréchet Inception Distance (Heusel et al. 2017) on 2048-d pool3 features."""

    name, space, label = "fid", "inception", "FID"


@register_metric
class KID(GeneratorMetric):
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2, cubic polynomial kernel.

    ``subset_size`` is clamped to the sample counts at compute time (and the clamp recorded).
    """

    name, space, needs_real = "kid", "inception", True

    def __init__(self, subsets: int = 100, subset_size: int = 1000) -> None:
        self.subsets, self.subset_size = int(subsets), int(subset_size)

    def build(self, extractor: Any) -> Metric:
        return KernelInceptionDistance(
            PassThrough(extractor.num_features),
            subsets=self.subsets,
            subset_size=self.subset_size,
            reset_real_features=False,
        )

    def update_fake(self, features: Tensor, logits: Tensor, requested: Tensor | None) -> None:
        self.state.update(features.double(), real=False)

    def compute(self, extractor: Any) -> MetricResult:
        m = self.state
        n_real, n_fake = sample_counts(m)
        m.subset_size = min(self.subset_size, n_real, n_fake)
        mean, std = m.compute()
        detail = (
            f"KID (cubic polynomial kernel, {m.subsets} subsets of {m.subset_size}), "
            f"n_real={n_real}, n_fake={n_fake}"
        )
        return self.result({"kid": float(mean), "kid_std": float(std)}, detail, extractor)


@register_metric
class IS(GeneratorMetric):
    """Inception Score (Salimans et al. 2016) of the 1008-way unbiased logits.

    Unavailable (None, with the reason) when the weights have no classifier head.
    """

    name, space = "is", "inception"

    def __init__(self, splits: int = 10) -> None:
        self.splits = int(splits)

    def build(self, extractor: Any) -> Metric:
        return InceptionScore(PassThrough(1008), splits=self.splits)

    def update_fake(self, features: Tensor, logits: Tensor, requested: Tensor | None) -> None:
        self.state.update(logits.double())

    def compute(self, extractor: Any) -> MetricResult:
        detail = f"Inception Score, {self.splits} splits, logits_unbiased"
        missing = {"is": None, "is_std": None}
        if not getattr(extractor, "has_classifier_head", True):
            reason = "the Inception weights have no classifier head (fc is NaN), so the Inception Score is undefined"
            return self.result(missing, detail, extractor, reason)
        mean, std = (float(v) for v in self.state.compute())
        if not math.isfinite(mean):
            return self.result(missing, detail, extractor, "non-finite Inception logits")
        std_or_none = std if math.isfinite(std) else None  # one split has no spread
        return self.result({"is": mean, "is_std": std_or_none}, detail, extractor)
