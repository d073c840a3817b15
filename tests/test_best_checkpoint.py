"""Metrics every N kimg and best.ckpt: a scripted metric sequence through real (tiny) trainings.

A registered test metric ``scripted`` returns the next value of a list at each evaluation, over
a stand-in Inception network (a fixed random projection), so no Inception forward pass runs.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.aggregation import SumMetric

from gan_lab.callbacks import periodic_metrics
from gan_lab.callbacks.best_checkpoint import BestCheckpoint
from gan_lab.callbacks.evaluation_schedule import EvaluationSchedule
from gan_lab.callbacks.periodic_metrics import GeneratorMetrics
from gan_lab.checkpoint_io import checkpoint_candidates, read_checkpoint
from gan_lab.errors import ConfigError, UserError, find_user_error
from gan_lab.metrics import registry
from gan_lab.metrics.registry import GeneratorMetric, MetricResult, register_metric
from gan_lab.sweep_runs import read_run
from gan_lab.train import train_and_record
from gan_lab.trained_model import load_trained_gan, read_run_checkpoint
from tests.conftest import TINY_MLP_GAN, compose_train_config, run_cli

SCRIPT: list[float] = []  # the values the next evaluations return, in order
FID = "metrics/fid"


class FakeInception:
    """Stand-in for InceptionExtractor: counts the images it sees (reference and generated)."""

    images_seen = 0

    def __init__(self, weights_path: str | None = None) -> None:
        self.name, self.protocol, self.num_features = "fake-inception", "projection (test)", 8
        self.weight: Tensor | None = None

    def to(self, device: Any) -> FakeInception:
        return self

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        FakeInception.images_seen += len(images)
        x = images.flatten(1).float() / 255
        if self.weight is None:
            self.weight = torch.randn(x.shape[1], 8, generator=torch.Generator().manual_seed(0))
        feats = x @ self.weight
        return feats, feats[:, :4]


@pytest.fixture(autouse=True)
def scripted_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    registry.metric_names()  # discover the package's metrics before copying the registry
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(periodic_metrics, "InceptionExtractor", FakeInception)
    FakeInception.images_seen = 0

    @register_metric
    class Scripted(GeneratorMetric):
        """The next value of SCRIPT (it still consumes the generated samples)."""

        name, space = "scripted", "inception"

        def build(self, extractor: Any) -> Metric:
            return SumMetric()

        def update_fake(self, features: Tensor, logits: Tensor, requested: Tensor | None) -> None:
            self.state.update(float(len(features)))

        def compute(self, extractor: Any) -> MetricResult:
            return self.result({"scripted": SCRIPT.pop(0)}, "scripted", extractor)


@pytest.fixture
def evaluated_steps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """(G step, metrics/kimg) of every evaluation the metrics callback runs."""
    seen: list[tuple[int, float]] = []
    original = GeneratorMetrics.evaluate

    def recording(self: GeneratorMetrics, trainer: Any, pl_module: Any) -> dict[str, float]:
        values = original(self, trainer, pl_module)
        seen.append((trainer.global_step, round(values["metrics/kimg"], 6)))
        return values

    monkeypatch.setattr(GeneratorMetrics, "evaluate", recording)
    return seen


def overrides(tmp_path: Path, *extra: str, monitor: str = "metrics/scripted") -> list[str]:
    return [
        *TINY_MLP_GAN,
        "callbacks.metrics.metrics=[scripted]",
        "callbacks.metrics.n_samples=16",
        "callbacks.metrics.n_reference=16",
        "callbacks.metrics.batch_size=16",
        f"callbacks.metrics.cache_dir={tmp_path / 'cache'}",
        "callbacks.metrics.every_n_steps=2",
        "callbacks.model_checkpoint.every_n_train_steps=2",
        f"callbacks.best_checkpoint.monitor={monitor}",
        *extra,
    ]


def train_run(run: Path, tmp_path: Path, script: list[float], *extra: str, **kw: Any) -> dict:
    SCRIPT[:] = script
    train_and_record(compose_train_config(overrides(tmp_path, *extra, **kw), run))
    forked = "trainer.strategy.start_method=fork" in extra  # the ranks used copies of SCRIPT
    assert forked or not SCRIPT, f"{len(SCRIPT)} scripted values were not used"
    return json.loads((run / "metrics.json").read_text())


def best_state(path: Path) -> dict[str, Any]:
    return read_checkpoint(path)["callbacks"]["BestCheckpoint"]


def test_best_ckpt_holds_the_step_that_scored_lowest(
    tmp_path: Path, evaluated_steps: list, one_cpu_thread: None
) -> None:
    run = tmp_path / "run"
    summary = train_run(run, tmp_path, [5.0, 3.0, 4.0, 2.5, 2.6], "trainer.max_steps=10")
    assert [step for step, _ in evaluated_steps] == [2, 4, 6, 8, 10]  # 10 is the final step: once
    best = read_checkpoint(run / "checkpoints" / "best.ckpt")
    assert best["global_step"] == 8 and best["progress"]["g_step"] == 8
    same_step = read_checkpoint(run / "checkpoints" / "step_0000008.ckpt")["state_dict"]
    later = read_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    for key, weights in best["state_dict"].items():
        assert torch.equal(weights, same_step[key]), key
    assert any(not torch.equal(w, later[k]) for k, w in best["state_dict"].items())
    assert best["integrity"]["algorithm"] == "sha256"  # the project's sealed writer
    # batch 16, one D update per G step: 8 G steps are 0.128 kimg
    assert summary["best_metric"] == "metrics/scripted"
    assert (summary["best_step"], summary["best_value"]) == (8, 2.5)
    assert summary["best_kimg"] == pytest.approx(0.128)
    assert summary["best_ckpt"] == str(run / "checkpoints" / "best.ckpt")
    assert summary["metrics/scripted"] == pytest.approx(2.6)  # the final value stays the final one
    assert best_state(run / "checkpoints" / "last.ckpt")["best_step"] == 8
    assert read_run(run).metrics["best_step"] == 8.0  # sweep tables skip the string entries

    # gan-eval / gan-sample: ckpt_path=best with the run directory
    loaded = load_trained_gan("best", run_dir=str(run))
    assert loaded.global_step == 8 and loaded.path == run / "checkpoints" / "best.ckpt"
    assert read_run_checkpoint("last", str(run))[0] == run / "checkpoints" / "last.ckpt"
    # best.ckpt is an earlier step: ckpt_path=last/auto never resume from it
    assert run / "checkpoints" / "best.ckpt" not in checkpoint_candidates([run / "checkpoints"])


def test_mode_max_keeps_the_highest_value(tmp_path: Path, one_cpu_thread: None) -> None:
    run = tmp_path / "run"
    summary = train_run(
        run, tmp_path, [3.0, 5.0, 4.0], "trainer.max_steps=6", "callbacks.best_checkpoint.mode=max"
    )
    assert (summary["best_step"], summary["best_value"]) == (4, 5.0)
    assert read_checkpoint(run / "checkpoints" / "best.ckpt")["global_step"] == 4


def test_a_resumed_run_keeps_the_better_best_ckpt(
    tmp_path: Path, evaluated_steps: list, one_cpu_thread: None
) -> None:
    run, best = tmp_path / "run", tmp_path / "run" / "checkpoints" / "best.ckpt"
    every_4 = ("model.n_critic=2", "callbacks.metrics.every_n_steps=4")
    train_run(run, tmp_path, [3.0, 2.0], *every_4, "trainer.max_steps=6")
    # step 6 scored best at the end of training, after last.ckpt of step 6 had been written
    assert [step for step, _ in evaluated_steps] == [4, 6]
    assert best_state(best)["best_step"] == 6
    assert best_state(run / "checkpoints" / "last.ckpt")["best_value"] == 3.0
    written = best.read_bytes()
    evaluated_steps.clear()
    summary = train_run(
        run, tmp_path, [2.5, 2.8], *every_4, "trainer.max_steps=12", "ckpt_path=last"
    )
    # steps 8 and 12 (the end); not step 6 again, though the first resumed batch ends at step 6
    assert [step for step, _ in evaluated_steps] == [8, 12]
    assert best.read_bytes() == written  # 2.5 and 2.8 are worse than 2.0: never rewritten
    assert (summary["best_step"], summary["best_value"]) == (6, 2.0)


def test_every_n_kimg_fires_on_the_first_g_step_past_each_multiple(
    tmp_path: Path, evaluated_steps: list, one_cpu_thread: None
) -> None:
    run = tmp_path / "run"
    extra = (
        "data.batch_size=8", "model.n_critic=2", "trainer.max_steps=12",
        "callbacks.metrics.every_n_steps=null", "callbacks.metrics.every_n_kimg=0.05",
    )  # fmt: skip
    train_run(run, tmp_path, [4.0, 3.0, 2.0, 1.0], *extra)
    # G step k ends D update 2k: 16k images. 50, 100, 150 images are first passed at G steps
    # 4 (64), 7 (112), 10 (160); D update 7 (56 images) takes no G step, so not at step 3.
    # Step 12 (192 images, no new multiple) is evaluated because it is the final step.
    assert evaluated_steps == [(4, 0.064), (7, 0.112), (10, 0.16), (12, 0.192)]
    state = read_checkpoint(run / "checkpoints" / "last.ckpt")["callbacks"]["GeneratorMetrics"]
    assert state["period"] == "every 0.05 kimg" and state["last_bucket"] == 3


def test_reference_features_are_read_from_the_cache_by_the_next_run(
    tmp_path: Path, one_cpu_thread: None
) -> None:
    extra = ("callbacks.metrics.metrics=[fid]", "trainer.max_steps=2", "callbacks.metrics.evaluate_at_end=false")  # fmt: skip
    SCRIPT.clear()
    train_and_record(compose_train_config(overrides(tmp_path, *extra, monitor=FID), tmp_path / "a"))
    assert FakeInception.images_seen == 16 + 16  # reference, then one evaluation's samples
    cached = list(
        (tmp_path / "cache" / "metrics").glob("ref-synthetic-train-16-fake-inception-*.pt")
    )
    assert len(cached) == 1
    FakeInception.images_seen = 0
    summary = train_and_record(
        compose_train_config(overrides(tmp_path, *extra, monitor=FID), tmp_path / "b")
    )
    assert FakeInception.images_seen == 16  # the samples only: the reference came from the cache
    assert summary["metrics/fid"] >= 0 and summary["best_step"] == 2


def test_no_monitor_or_a_metric_never_logged_writes_no_best_ckpt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, one_cpu_thread: None
) -> None:
    summary = train_run(tmp_path / "a", tmp_path, [1.0], "trainer.max_steps=2", monitor="null")
    assert not (tmp_path / "a" / "checkpoints" / "best.ckpt").exists()
    assert not any(k.startswith("best_") for k in summary)
    with caplog.at_level(logging.WARNING, logger="gan_lab.callbacks.best_checkpoint"):
        train_run(tmp_path / "b", tmp_path, [1.0], "trainer.max_steps=2", monitor="metrics/fid")
    assert not (tmp_path / "b" / "checkpoints" / "best.ckpt").exists()
    warnings = [r.getMessage() for r in caplog.records if "never logged" in r.getMessage()]
    assert warnings == [
        "callbacks.best_checkpoint.monitor=metrics/fid was never logged: no best.ckpt written "
        "(logged metrics: metrics/kimg, metrics/scripted, metrics/seconds)"
    ]
    with pytest.raises(UserError, match=r"ckpt_path=best: run .* has no best\.ckpt \(it keeps one"):
        read_run_checkpoint("best", str(tmp_path / "b"))
    with pytest.raises(UserError, match=r"ckpt_path=best names a checkpoint .*add run_dir="):
        read_run_checkpoint("best")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["callbacks.metrics.every_n_kimg=10"],
            r"callbacks\.metrics\.every_n_kimg=10 is invalid: set exactly one of "
            r"callbacks\.metrics\.every_n_steps \(now 2\) and callbacks\.metrics\.every_n_kimg",
        ),
        (
            ["callbacks.metrics.every_n_steps=null", "callbacks.metrics.every_n_kimg=-1"],
            r"every_n_kimg=-1 is invalid: must be a number > 0",
        ),
        (["callbacks.best_checkpoint.mode=lowest"], r"mode='lowest' is invalid: choose min"),
    ],
)
def test_bad_settings_fail_before_anything_is_written(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    cfg = compose_train_config(overrides(tmp_path, *extra), tmp_path / "run")
    with pytest.raises(Exception) as info:
        train_and_record(cfg)
    error = find_user_error(info.value)
    assert isinstance(error, ConfigError) and re.search(message, str(error)), info.value
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_both_schedules_are_one_line_on_the_command_line(tmp_path: Path) -> None:
    result = run_cli(
        [*TINY_MLP_GAN, "callbacks.metrics.every_n_kimg=50", "trainer.max_steps=2"], tmp_path
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "set exactly one of callbacks.metrics.every_n_steps" in lines[0]


def test_best_checkpoint_listed_before_metrics_is_refused() -> None:
    best = BestCheckpoint("unused", monitor="metrics/fid")
    trainer = SimpleNamespace(callbacks=[best, GeneratorMetrics(metrics=["fid"])])
    with pytest.raises(ConfigError, match=r"comes before callbacks\.metrics"):
        best.setup(trainer, None, "fit")  # type: ignore[arg-type]


def test_schedule_buckets_are_exact_and_reset_when_the_period_changes() -> None:
    schedule = EvaluationSchedule("callbacks.metrics", None, 0.1)
    schedule.start(0, 0)
    # 0.1 kimg is exactly 100 images: 100 is due (no 99.99999 float drift), 199 is not
    assert schedule.due(1, 100) and schedule.bucket(1, 199) == 1 and schedule.bucket(1, 200) == 2
    schedule.mark(1, 100)
    assert not schedule.due(2, 199) and schedule.due(3, 200)
    other = EvaluationSchedule("callbacks.metrics", None, 0.3)
    other.load_state_dict(schedule.state_dict())
    assert other.last_bucket is None and other.last_step == 1  # counted anew from the resume point
    with pytest.raises(ConfigError, match="every_n_steps=0 is invalid"):
        EvaluationSchedule("callbacks.metrics", 0, None)


def test_under_ddp_both_ranks_agree_and_rank_zero_writes_one_best_ckpt(
    tmp_path: Path, evaluated_steps: list
) -> None:
    # forked ranks: each inherits the script (the same values, as a reduced metric gives every rank)
    run = tmp_path / "run"
    ddp = ("trainer=ddp_cpu", "trainer.strategy.start_method=fork", "trainer.max_steps=6")
    with_fid = "callbacks.metrics.metrics=[scripted,fid]"
    summary = train_run(run, tmp_path, [5.0, 2.0, 3.0], *ddp, with_fid)
    assert (summary["best_step"], summary["best_value"]) == (4, 2.0)
    assert summary["best_ckpt"] == str(run / "checkpoints" / "best.ckpt")
    assert read_checkpoint(run / "checkpoints" / "best.ckpt")["global_step"] == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best.ckpt", "last.ckpt", "step_0000002.ckpt", "step_0000004.ckpt", "step_0000006.ckpt",
    ]  # fmt: skip
    # rank 0 cached the reference features both ranks computed half of: a single-process run
    # reads them (only its 16 samples pass through the network) and they equal its own
    (ddp_cache,) = (tmp_path / "cache" / "metrics").glob("ref-*.pt")
    FakeInception.images_seen = 0
    fid_only = ("callbacks.metrics.metrics=[fid]", "trainer.max_steps=2")
    train_run(tmp_path / "single", tmp_path, [], *fid_only, monitor=FID)
    assert FakeInception.images_seen == 16
    fresh = (f"callbacks.metrics.cache_dir={tmp_path / 'fresh'}",)
    train_run(tmp_path / "fresh_run", tmp_path, [], *fid_only, *fresh, monitor=FID)
    (single_cache,) = (tmp_path / "fresh" / "metrics").glob("ref-*.pt")
    assert single_cache.name == ddp_cache.name
    ddp_features = torch.load(ddp_cache, weights_only=True)["features"]
    assert torch.equal(ddp_features, torch.load(single_cache, weights_only=True)["features"])
