"""The chosen metrics of one evaluation: features in, numbers with their protocol out.

Each extractor runs once per image batch; its features feed torchmetrics' FID / KID / IS
(through :class:`PassThrough`) and the class-histogram metrics. All state lives in torchmetrics
``Metric`` objects, so under DDP ``compute()`` reduces it across ranks: sums for FID, the
concatenated features for KID / IS, summed counts for the class histogram.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from gan_lab.errors import ConfigError
from gan_lab.metrics.features import FeatureExtractor, PassThrough
from gan_lab.metrics.precision_recall import PrecisionRecall

INCEPTION_METRICS = ("fid", "kid", "is", "precision_recall")
# the Inception metrics that compare generated pool3 features with reference ones
FEATURE_METRICS = ("fid", "kid", "precision_recall")
CLASSIFIER_METRICS = ("classifier_fd", "class_coverage", "class_accuracy")
METRICS = INCEPTION_METRICS + CLASSIFIER_METRICS


@dataclass
class MetricResult:
    """One metric: its numbers (None when unavailable, with the reason) and how they were made."""

    name: str
    values: dict[str, float | None]
    protocol: str
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.values, "protocol": self.protocol}
        if self.reason:
            out["unavailable"] = self.reason
        return {**out, **self.extra}


def check_metric_names(names: list[str], key: str = "metrics") -> list[str]:
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ConfigError(key, names, f"choose one or more of {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


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


class MetricSuite:
    """Accumulates real and generated images (or their cached features) and computes the metrics.

    ``extractors`` maps ``"inception"`` / ``"classifier"`` to the networks the chosen metrics
    need. ``kid_subset_size`` is clamped to the sample counts (and the clamp recorded).
    """

    def __init__(
        self,
        names: list[str],
        extractors: dict[str, FeatureExtractor],
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        seed: int = 0,
        nearest_k: int = 3,
    ) -> None:
        self.names = check_metric_names(names)
        self.extractors = extractors
        self.kid_subsets, self.kid_subset_size, self.is_splits, self.seed = (
            kid_subsets,
            kid_subset_size,
            is_splits,
            seed,
        )
        self.metrics: dict[str, Metric] = {}
        self.device = torch.device("cpu")
        inc, cls = extractors.get("inception"), extractors.get("classifier")
        for name in self.names:
            needed = inc if name in INCEPTION_METRICS else cls
            if needed is None:
                raise ValueError(
                    f"metric {name!r} needs the {'inception' if name in INCEPTION_METRICS else 'classifier'} extractor"
                )
        if "fid" in self.names:
            self.metrics["fid"] = FrechetInceptionDistance(
                PassThrough(inc.num_features), reset_real_features=False
            )
        if "kid" in self.names:
            self.metrics["kid"] = KernelInceptionDistance(
                PassThrough(inc.num_features),
                subsets=kid_subsets,
                subset_size=kid_subset_size,
                reset_real_features=False,
            )
        if "is" in self.names:
            self.metrics["is"] = InceptionScore(PassThrough(1008), splits=is_splits)
        if "precision_recall" in self.names:
            self.metrics["precision_recall"] = PrecisionRecall(nearest_k)
        if "classifier_fd" in self.names:
            self.metrics["classifier_fd"] = FrechetInceptionDistance(
                PassThrough(cls.num_features), reset_real_features=False
            )
        if {"class_coverage", "class_accuracy"} & set(self.names):
            self.metrics["classes"] = ClassHistogram(cls.num_classes)

    @property
    def needs_real(self) -> dict[str, bool]:
        """Which extractors need reference (real) features."""
        return {
            "inception": bool(set(FEATURE_METRICS) & set(self.names)),
            "classifier": "classifier_fd" in self.names,
        }

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
        keys = FEATURE_METRICS if extractor == "inception" else ("classifier_fd",)
        for key in keys:
            if key in self.metrics:
                self.metrics[key].update(features, real=True)

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
        if "inception" in self.extractors and set(INCEPTION_METRICS) & set(self.names):
            feats, logits = self.extractors["inception"](images)
            for key in FEATURE_METRICS:
                if key in self.metrics:
                    self.metrics[key].update(feats.double(), real=False)
            if "is" in self.metrics:
                self.metrics["is"].update(logits.double())
        if "classifier" in self.extractors and set(CLASSIFIER_METRICS) & set(self.names):
            feats, logits = self.extractors["classifier"](images)
            if "classifier_fd" in self.metrics:
                self.metrics["classifier_fd"].update(feats.double(), real=False)
            if "classes" in self.metrics:
                self.metrics["classes"].update(logits, requested)

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
            for name in self.names:
                results[name] = getattr(self, f"_compute_{name}")()
        return results

    def _protocol(self, extractor: str, detail: str) -> str:
        return f"{detail}; {self.extractors[extractor].protocol}"

    @staticmethod
    def _count_pair(metric: Metric) -> tuple[int, int]:
        """(n_real, n_fake) over all ranks (the states are reduced for the count, then restored)."""
        with metric.sync_context():
            if isinstance(metric, KernelInceptionDistance | PrecisionRecall):
                n_real = (
                    sum(len(f) for f in metric.real_features)
                    if isinstance(metric.real_features, list)
                    else len(metric.real_features)
                )
                n_fake = (
                    sum(len(f) for f in metric.fake_features)
                    if isinstance(metric.fake_features, list)
                    else len(metric.fake_features)
                )
            else:
                n_real, n_fake = (
                    int(metric.real_features_num_samples),
                    int(metric.fake_features_num_samples),
                )
        return n_real, n_fake

    def _counts(self, metric: Metric) -> str:
        n_real, n_fake = self._count_pair(metric)
        return f"n_real={n_real}, n_fake={n_fake}"

    def _compute_fid(self) -> MetricResult:
        m = self.metrics["fid"]
        value = float(m.compute())
        return MetricResult(
            "fid", {"fid": value}, self._protocol("inception", f"FID {self._counts(m)}")
        )

    def _compute_kid(self) -> MetricResult:
        m = self.metrics["kid"]
        n_real, n_fake = self._count_pair(m)
        m.subset_size = min(self.kid_subset_size, n_real, n_fake)
        mean, std = m.compute()
        detail = (
            f"KID (cubic polynomial kernel, {m.subsets} subsets of {m.subset_size}), "
            f"n_real={n_real}, n_fake={n_fake}"
        )
        return MetricResult(
            "kid", {"kid": float(mean), "kid_std": float(std)}, self._protocol("inception", detail)
        )

    def _compute_is(self) -> MetricResult:
        inc = self.extractors["inception"]
        detail = f"Inception Score, {self.is_splits} splits, logits_unbiased"
        if not getattr(inc, "has_classifier_head", True):
            reason = "the Inception weights have no classifier head (fc is NaN), so the Inception Score is undefined"
            return MetricResult(
                "is", {"is": None, "is_std": None}, self._protocol("inception", detail), reason
            )
        mean, std = (float(v) for v in self.metrics["is"].compute())
        if not math.isfinite(mean):
            reason = "non-finite Inception logits"
            return MetricResult(
                "is", {"is": None, "is_std": None}, self._protocol("inception", detail), reason
            )
        std_or_none = std if math.isfinite(std) else None  # one split has no spread
        return MetricResult(
            "is", {"is": mean, "is_std": std_or_none}, self._protocol("inception", detail)
        )

    def _compute_precision_recall(self) -> MetricResult:
        m = self.metrics["precision_recall"]
        detail = (
            f"improved precision/recall (Kynkaanniemi et al. 2019), density/coverage (Naeem et al. "
            f"2020), k={m.k} nearest neighbours, {self._counts(m)}"
        )
        return MetricResult("precision_recall", m.compute(), self._protocol("inception", detail))

    def _compute_classifier_fd(self) -> MetricResult:
        m = self.metrics["classifier_fd"]
        value = float(m.compute())
        detail = f"Fréchet distance in classifier feature space, {self._counts(m)}"
        return MetricResult(
            "classifier_fd", {"classifier_fd": value}, self._protocol("classifier", detail)
        )

    def _compute_class_coverage(self) -> MetricResult:
        stats = self.metrics["classes"].compute()
        counts = stats["counts"].cpu()
        detail = f"classifier argmax histogram of {int(counts.sum())} samples; hit = >= 1 sample; KL in nats"
        return MetricResult(
            "class_coverage",
            coverage_stats(counts),
            self._protocol("classifier", detail),
            extra={"histogram": counts.tolist()},
        )

    def _compute_class_accuracy(self) -> MetricResult:
        stats = self.metrics["classes"].compute()
        requested = int(stats["requested"])
        detail = f"fraction of {requested} samples classified as their requested class"
        if requested == 0:
            reason = "the generator is unconditional (no requested classes)"
            return MetricResult(
                "class_accuracy",
                {"class_accuracy": None},
                self._protocol("classifier", detail),
                reason,
            )
        value = int(stats["hits"]) / requested
        return MetricResult(
            "class_accuracy", {"class_accuracy": value}, self._protocol("classifier", detail)
        )


def flat_scalars(results: dict[str, MetricResult], prefix: str = "metrics/") -> dict[str, float]:
    """The numeric values for a logger (unavailable ones left out)."""
    return {
        f"{prefix}{k}": v for r in results.values() for k, v in r.values.items() if v is not None
    }
