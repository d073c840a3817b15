"""Training-health monitor: tells a collapsed generator from a healthy one, sees D overpower G."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import gan_lab.train as train_module
from gan_lab.callbacks.health_monitor import HealthMonitor, HealthSignals
from gan_lab.data.sources import synthetic_shapes
from gan_lab.data.transforms import uint8_to_float
from gan_lab.training.recovery import TrainingStopped
from tests.conftest import TINY_MLP_GAN, compose_train_config

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return uint8_to_float(synthetic_shapes("train", 256, 32, 3).images)


def fake_module(outputs: torch.Tensor) -> SimpleNamespace:
    """What the monitor needs of a GANModule: fixed noise and a generator behind ``generate``."""
    n = len(outputs)
    return SimpleNamespace(
        fixed_z=torch.randn(n, 8),
        fixed_y=torch.zeros(n, dtype=torch.long),
        generate=lambda z, y, use_ema: outputs,
    )


def verdict(monitor: HealthMonitor, outputs: torch.Tensor, real: torch.Tensor) -> bool:
    ratio, duplicates = monitor.measure_diversity(fake_module(outputs), real)
    return ratio < monitor.diversity_ratio_floor or duplicates > monitor.duplicate_fraction_ceiling


def test_collapsed_generators_are_told_apart_from_a_healthy_one(images: torch.Tensor) -> None:
    monitor = HealthMonitor()
    real, other_real = images[:64], images[64:128]
    jitter = 0.01 * torch.randn_like(real)
    one_image = images[200].expand_as(real) + jitter  # full collapse
    four_patterns = images[200:204].repeat(16, 1, 1, 1) + jitter  # "a handful of repeated patches"
    healthy = other_real  # as varied as the data, none of it the real batch itself

    assert verdict(monitor, one_image, real)
    assert verdict(monitor, four_patterns, real)
    assert not verdict(monitor, healthy, real)
    ratio, duplicates = monitor.measure_diversity(fake_module(healthy), real)
    assert 0.7 < ratio < 1.3 and duplicates == 0.0


def dcgan_failure(signals: HealthSignals, batches: int) -> dict[str, str]:
    alerts: dict[str, str] = {}
    for _ in range(batches):  # the measured CIFAR-10 DCGAN failure: D loss ~0.001, G loss ~8
        alerts |= signals.add(d_loss=0.001, g_loss=8.0, real_score=0.999, fake_score=0.0005)
    return alerts


def make_signals(window: int = 50) -> HealthSignals:
    return HealthSignals(
        window, 0.01, 0.98, 50.0, loss_bounded_below=True, scores_are_probabilities=True
    )


def test_d_overpowering_is_reported_once_the_window_is_full_and_not_for_a_balanced_game() -> None:
    assert dcgan_failure(make_signals(), 49) == {}  # not judged on a partial window
    alerts = dcgan_failure(make_signals(), 50)
    assert set(alerts) == {"d_overpowering"}
    assert "mean D loss 0.001" in alerts["d_overpowering"]

    balanced = make_signals()
    for i in range(200):
        wobble = 0.05 * ((i % 7) - 3)
        assert (
            balanced.add(d_loss=1.3 + wobble, g_loss=0.8 - wobble, real_score=0.55, fake_score=0.45)
            == {}
        )


def test_loss_explosion_is_reported() -> None:
    signals = make_signals(window=20)
    for _ in range(20):
        signals.add(d_loss=1.2, g_loss=0.9, real_score=0.6, fake_score=0.4)
    alerts = signals.add(d_loss=1.2, g_loss=900.0, real_score=0.6, fake_score=0.4)
    assert set(alerts) == {"loss_explosion"} and "loss/g=900" in alerts["loss_explosion"]


@pytest.mark.parametrize("size", [1, 4, 7])
def test_the_rolling_median_is_the_median_of_the_window_it_holds(size: int) -> None:
    import random
    import statistics

    from gan_lab.training.health_signals import RollingWindow

    rng = random.Random(size)
    window = RollingWindow(size)
    pool = [-2.0, -0.5, 0.5, 2.0, 3.0, math.inf, -math.inf, math.nan]  # ties, signs, non-finite
    for _ in range(300):
        window.append(rng.choice(pool) if rng.random() < 0.5 else rng.uniform(-5, 5))
        held = [abs(v) if v == v else math.inf for v in window]
        assert len(window) == min(size, len(held)) and len(held) <= size
        assert window.median_magnitude() == statistics.median(held)
    window.clear()
    window.append(-3.0)
    assert window.median_magnitude() == 3.0


TINY = (
    *TINY_MLP_GAN,
    "trainer.max_steps=6",
    "callbacks.health_monitor.window=3",
    "callbacks.health_monitor.diversity_every_n_steps=2",
    "callbacks.health_monitor.diversity_start_step=100",
    # thresholds no run can meet, so the signal fires on a healthy run and the policy shows
    "callbacks.health_monitor.d_loss_floor=1000",
)


def test_in_a_run_signals_go_to_tensorboard_and_warn_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = compose_train_config(
        [*TINY, "callbacks.health_monitor.policy=continue"], tmp_path / "run"
    )
    with caplog.at_level(logging.WARNING, logger="gan_lab.callbacks.health_monitor"):
        train_module.train(cfg)
    warnings = [r.getMessage() for r in caplog.records if "training health" in r.getMessage()]
    assert len(warnings) == 1 and "d_overpowering: mean D loss" in warnings[0]
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"health/d_loss_mean", "health/diversity_ratio", "health/alerts_d_overpowering"} <= tags
    assert events.Scalars("health/alerts_d_overpowering")[-1].value == 4  # batches 3..6 of 6


def test_stop_policy_ends_the_run_naming_what_was_seen() -> None:
    monitor = HealthMonitor(policy="stop")
    alerts = dcgan_failure(make_signals(), 50)
    with pytest.raises(
        TrainingStopped, match=r"unhealthy at generator step 22000: d_overpowering: mean D loss"
    ):
        monitor._act(SimpleNamespace(global_step=22000), None, alerts)


def test_the_monitor_judges_every_batch_while_the_loggers_keep_one_in_five(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Losses are logged only on written batches (Lightning's self.log is slow); the monitor must
    still see each batch's values, and the run's final scalars must be the last batch's."""
    seen: list[HealthMonitor] = []
    original = train_module.instantiate_callbacks

    def keep_monitor(cfg: object) -> list:
        callbacks = original(cfg)
        seen.extend(c for c in callbacks if isinstance(c, HealthMonitor))
        return callbacks

    monkeypatch.setattr(train_module, "instantiate_callbacks", keep_monitor)
    cfg = compose_train_config(
        [
            *TINY,
            "trainer.max_steps=12",
            "trainer.log_every_n_steps=5",
            "callbacks.health_monitor.window=50",
            "callbacks.health_monitor.policy=continue",
        ],
        tmp_path / "run",
    )
    final = train_module.train(cfg)
    signals = seen[0].signals
    assert len(signals.d_loss) == 12 and len(signals.gap) == 12
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("loss/d")) == 2  # batches 5 and 10
    assert final["loss/d"] == pytest.approx(signals.d_loss[-1])
    assert final["g_step"] == 12


def test_step_stats_reach_the_host_in_one_copy_per_batch() -> None:
    """Callbacks read six scalars a batch; on a GPU each separate read would wait for the device."""
    from gan_lab.training.step_stats import StepStats

    stats = StepStats()
    stats.update({"loss/d": torch.tensor(0.5), "D(x)": torch.tensor(0.25, dtype=torch.bfloat16)})
    first = stats.floats()
    assert first == {"loss/d": 0.5, "D(x)": 0.25}
    assert stats.floats() is first  # every further reader of this batch gets the same copy
    stats["loss/g"] = torch.tensor(float("nan"))  # the next values replace the copy
    after = stats.floats()
    assert after is not first and math.isnan(after["loss/g"]) and after["loss/d"] == 0.5
