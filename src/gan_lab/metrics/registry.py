"""The metric registry: one class per metric, registered by name, valid names read from here.

A metric says what it needs (``space``: the feature extractor whose output it consumes;
``needs_real``: whether it compares with reference features; ``conditional_only``: whether it
needs the classes a conditional generator was asked for) and takes its options as constructor
arguments, the keys of its ``configs/metrics/<name>.yaml``. Its state is a torchmetrics
``Metric`` (built once the extractor is known), so DDP reduction comes for free.

Every module of ``gan_lab.metrics`` is imported before a name is looked up, so a new metric is
one decorated class in any module there (plus its YAML), and nothing else names it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from torch import Tensor
from torchmetrics import Metric

from gan_lab.errors import ConfigError

FeatureSpace = Literal["inception", "classifier"]


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


class GeneratorMetric:
    """Base of every registered metric: routing properties, a torchmetrics state, a result."""

    name: ClassVar[str]
    space: ClassVar[FeatureSpace]
    needs_real: ClassVar[bool] = False
    conditional_only: ClassVar[bool] = False
    state: Metric

    def build(self, extractor: Any) -> Metric:
        """The accumulating state, sized to the extractor's features."""
        raise NotImplementedError

    def update_real(self, features: Tensor) -> None:
        self.state.update(features, real=True)

    def update_fake(self, features: Tensor, logits: Tensor, requested: Tensor | None) -> None:
        """Features and logits of one generated batch (float32), and the requested classes."""
        raise NotImplementedError

    def compute(self, extractor: Any) -> MetricResult:
        """All ranks call this together (torchmetrics synchronises the state)."""
        raise NotImplementedError

    def result(
        self,
        values: dict[str, float | None],
        detail: str,
        extractor: Any,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> MetricResult:
        """The values with their protocol: this metric's detail, then the extractor's."""
        return MetricResult(
            self.name, values, f"{detail}; {extractor.protocol}", reason, extra or {}
        )


_REGISTRY: dict[str, type[GeneratorMetric]] = {}
_discovered = False


def register_metric(cls: type[GeneratorMetric]) -> type[GeneratorMetric]:
    """Class decorator: make ``cls`` choosable as ``metrics=[<cls.name>]``."""
    other = _REGISTRY.get(cls.name)
    if other is not None and other.__qualname__ != cls.__qualname__:
        raise ValueError(
            f"metric name {cls.name!r} is taken by {other.__module__}.{other.__name__}"
        )
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    """Import every module of the package once, so each registers its metrics."""
    global _discovered
    if _discovered:
        return
    import gan_lab.metrics as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    _discovered = True


def metric_names() -> tuple[str, ...]:
    _discover()
    return tuple(sorted(_REGISTRY))


def metric_class(name: str, key: str = "metrics") -> type[GeneratorMetric]:
    _discover()
    if name not in _REGISTRY:
        raise ConfigError(key, name, f"choose one or more of {', '.join(metric_names())}")
    return _REGISTRY[name]


def build_metrics(
    chosen: Sequence[str | GeneratorMetric],
    key: str = "metrics",
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[GeneratorMetric]:
    """Names (built with ``options[name]``, else defaults) or metric objects, in order, each once."""
    names = [m if isinstance(m, str) else m.name for m in chosen]
    _discover()
    if not names or any(n not in _REGISTRY for n in names):
        raise ConfigError(key, names, f"choose one or more of {', '.join(metric_names())}")
    options = dict(options or {})
    if set(options) - set(names):
        raise ConfigError(
            f"{key.rsplit('.', 1)[0]}.metric_options" if "." in key else "metric_options",
            sorted(set(options) - set(names)),
            f"names metrics that are not chosen ({', '.join(names)})",
        )
    metrics: dict[str, GeneratorMetric] = {}
    for m in chosen:
        name = m if isinstance(m, str) else m.name
        if name not in metrics:
            metrics[name] = _REGISTRY[m](**options.get(m, {})) if isinstance(m, str) else m
    return list(metrics.values())


def sample_counts(metric: Metric) -> tuple[int, int]:
    """(n_real, n_fake) over all ranks (the states are reduced for the count, then restored)."""
    with metric.sync_context():
        if hasattr(metric, "real_features_num_samples"):  # FID keeps sums and counts
            return int(metric.real_features_num_samples), int(metric.fake_features_num_samples)
        return _rows(metric.real_features), _rows(metric.fake_features)  # KID, precision/recall


def _rows(features: Tensor | list[Tensor]) -> int:
    return sum(len(f) for f in features) if isinstance(features, list) else len(features)
