"""Metrics of generated images: FID / KID / IS / precision-recall (torchmetrics over
torch-fidelity's Inception) and cheap in-domain classifier metrics, with reference features
cached on disk. Each metric is one class registered in :mod:`gan_lab.metrics.registry`."""

from gan_lab.metrics.features import (
    ClassifierExtractor,
    InceptionExtractor,
    resolve_inception_weights,
)
from gan_lab.metrics.registry import (
    GeneratorMetric,
    MetricResult,
    metric_class,
    metric_names,
    register_metric,
)
from gan_lab.metrics.suite import MetricSuite

__all__ = [
    "ClassifierExtractor",
    "GeneratorMetric",
    "InceptionExtractor",
    "MetricResult",
    "MetricSuite",
    "metric_class",
    "metric_names",
    "register_metric",
    "resolve_inception_weights",
]
