"""The metric registry: every YAML names its registered class, names are read from the registry,
and a metric defined at test time (one class, no other edit) runs through the suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import pytest
from omegaconf import OmegaConf
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.aggregation import SumMetric

from gan_lab.errors import ConfigError
from gan_lab.metrics import registry
from gan_lab.metrics.registry import GeneratorMetric, MetricResult, metric_names, register_metric
from gan_lab.metrics.suite import MetricSuite
from tests.test_metrics import ProjectionExtractor, images

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "metrics"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_metric_yaml_instantiates_its_registered_class(path: Path) -> None:
    (name, node), *rest = OmegaConf.load(path).items()
    assert not rest and path.stem == name
    metric = hydra.utils.instantiate(node)
    assert metric.name == name and type(metric) is registry.metric_class(name)
    assert metric.space in ("inception", "classifier")


def test_names_come_from_the_registry_and_errors_list_them() -> None:
    names = metric_names()
    assert {"fid", "kid", "is", "precision_recall", "classifier_fd", "class_coverage"} <= set(names)
    assert len(names) == len(list(CONFIGS.glob("*.yaml")))  # one YAML per registered metric
    with pytest.raises(
        ConfigError, match=r"metrics=\['fdi'\] is invalid: choose one or more of class_accuracy"
    ):
        MetricSuite(["fdi"], {})


def test_a_metric_added_at_test_time_is_one_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_metric
    class MeanLogit(GeneratorMetric):
        """Mean of the first logit over the generated samples."""

        name, space = "mean_logit", "classifier"

        def build(self, extractor: Any) -> Metric:
            self.count = 0
            return SumMetric()

        def update_fake(self, features: Tensor, logits: Tensor, requested: Tensor | None) -> None:
            self.state.update(logits[:, 0].sum())
            self.count += len(logits)

        def compute(self, extractor: Any) -> MetricResult:
            return self.result(
                {"mean_logit": float(self.state.compute()) / self.count}, "mean", extractor
            )

    assert "mean_logit" in metric_names()
    ext = ProjectionExtractor(16)
    x = images(20, 3)
    suite = MetricSuite(["mean_logit"], {"classifier": ext})
    assert suite.needs_real == {"classifier": False}
    suite.add_fake(x)
    result = suite.compute()["mean_logit"]
    assert result.values["mean_logit"] == pytest.approx(float(ext(x)[1][:, 0].mean()), rel=1e-5)
    assert result.protocol == "mean; random projection (test)"


def test_the_training_callback_takes_names_and_per_metric_options() -> None:
    from gan_lab.callbacks.periodic_metrics import GeneratorMetrics

    callback = GeneratorMetrics(metrics=["fid", "kid"], metric_options={"kid": {"subset_size": 7}})
    assert [(m.name, getattr(m, "subset_size", None)) for m in callback.chosen] == [
        ("fid", None),
        ("kid", 7),
    ]
    with pytest.raises(ConfigError, match=r"callbacks\.metrics\.metric_options=\['is'\]"):
        GeneratorMetrics(metrics=["fid"], metric_options={"is": {"splits": 2}})
    with pytest.raises(ConfigError, match=r"callbacks\.metrics\.metrics=\['fid', 'kd'\]"):
        GeneratorMetrics(metrics=["fid", "kd"])


def test_gan_eval_reports_an_option_the_metric_does_not_take(tmp_path: Path) -> None:
    from gan_lab.eval import chosen_metrics
    from tests.test_eval_sample import entry_cfg

    cfg = entry_cfg("eval", tmp_path, "metrics=[fid,kid]", "+metrics.kid.subsetz=5")
    with pytest.raises(
        ConfigError, match=r"^metrics\.kid=.*unexpected keyword argument 'subsetz'$"
    ):
        chosen_metrics(cfg)
