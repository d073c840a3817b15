"""Metrics of generated images: FID / KID / IS (torchmetrics over torch-fidelity's Inception) and
cheap in-domain classifier metrics, with reference features cached on disk."""

from gan_lab.metrics.features import (
    ClassifierExtractor,
    InceptionExtractor,
    resolve_inception_weights,
)
from gan_lab.metrics.suite import (
    CLASSIFIER_METRICS,
    INCEPTION_METRICS,
    METRICS,
    MetricResult,
    MetricSuite,
)

__all__ = [
    "CLASSIFIER_METRICS",
    "INCEPTION_METRICS",
    "METRICS",
    "ClassifierExtractor",
    "InceptionExtractor",
    "MetricResult",
    "MetricSuite",
    "resolve_inception_weights",
]
