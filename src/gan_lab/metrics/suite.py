"""The chosen metrics of one evaluation: features in, numbers with their protocol out.

Each extractor runs once per image batch and its features go to every chosen metric of its
feature space (see :mod:`gan_lab.metrics.registry`). All state lives in torchmetrics ``Metric``
objects, so under DDP ``compute()`` reduces it across ranks: sums for FID, the concatenated
features for KID / IS / precision-recall, summed counts for the class histograms.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from gan_lab.metrics.features import FeatureExtractor
from gan_lab.metrics.registry import GeneratorMetric, MetricResult, build_metrics


class MetricSuite:
    """Accumulates real and generated images (or their cached features) and computes the metrics.

    ``metrics`` are registered names (default options) or metric objects with their options;
    ``extractors`` maps each feature space (``"inception"`` / ``"classifier"``) the chosen
    metrics need to its network. ``seed`` fixes the random parts of compute (KID subsets, the
    IS split shuffle).
    """

    def __init__(
        self,
        metrics: Sequence[str | GeneratorMetric],
        extractors: dict[str, FeatureExtractor],
        seed: int = 0,
    ) -> None:
        self.chosen = build_metrics(metrics)
        self.names = [m.name for m in self.chosen]
        self.extractors = extractors
        self.seed = seed
        self.device = torch.device("cpu")
        for metric in self.chosen:
            if metric.space not in extractors:
                raise ValueError(f"metric {metric.name!r} needs the {metric.space} extractor")
            metric.state = metric.build(extractors[metric.space])
        # the torchmetrics states by metric name (what DDP reduces)
        self.metrics: dict[str, Metric] = {m.name: m.state for m in self.chosen}

    @property
    def needs_real(self) -> dict[str, bool]:
        """Which extractors need reference (real) features."""
        spaces = dict.fromkeys(m.space for m in self.chosen)
        return {s: any(m.needs_real for m in self.chosen if m.space == s) for s in spaces}

    def to(self, device: torch.device | str) -> MetricSuite:
        self.device = torch.device(device)
        for metric in self.metrics.values():
            metric.to(device)
        for extractor in self.extractors.values():
            extractor.to(device)
        return self

    # ------------------------------------------------------------------------------- updates
    def add_real_features(self, extractor: str, features: Tensor) -> None:
        """Reference features (computed here or loaded from the cache) of one extractor."""
        # cached reference features are loaded on the host; the metric states live on self.device
        features = features.to(self.device, torch.float64)
        for metric in self.chosen:
            if metric.space == extractor and metric.needs_real:
                metric.update_real(features)

    def add_real(self, images: Tensor) -> dict[str, Tensor]:
        """uint8 real images; returns the features per extractor (for caching)."""
        out = {}
        for name, needed in self.needs_real.items():
            if needed:
                out[name] = self.extractors[name](images)[0]
                self.add_real_features(name, out[name])
        return out

    def add_fake(self, images: Tensor, requested: Tensor | None = None) -> None:
        """uint8 generated images and, for conditional generators, the classes they were asked for."""
        for space in dict.fromkeys(m.space for m in self.chosen):
            feats, logits = self.extractors[space](images)
            for metric in self.chosen:
                if metric.space == space:
                    metric.update_fake(feats, logits, requested)

    def reset_fake(self) -> None:
        """Forget generated samples, keep the reference (for the next training-time evaluation)."""
        for metric in self.metrics.values():
            metric.reset()

    # ------------------------------------------------------------------------------- results
    def compute(self) -> dict[str, MetricResult]:
        """All ranks must call this together (it synchronises the metric states)."""
        results: dict[str, MetricResult] = {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # KID subsets and the IS split shuffle are random
            for metric in self.chosen:
                results[metric.name] = metric.compute(self.extractors[metric.space])
        return results


def flat_scalars(results: dict[str, MetricResult], prefix: str = "metrics/") -> dict[str, float]:
    """The numeric values for a logger (unavailable ones left out)."""
    return {
        f"{prefix}{k}": v for r in results.values() for k, v in r.values.items() if v is not None
    }
