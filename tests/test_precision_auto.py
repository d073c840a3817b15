"""``trainer.precision=auto``: the fast format per machine, measured once and then stable."""

from __future__ import annotations

import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from gan_lab import precision_auto
from gan_lab.errors import ConfigError
from gan_lab.precision_auto import conv_step_seconds, resolve_precision
from gan_lab.preflight import validate_config
from gan_lab.trainer_args import trainer_config
from tests.conftest import compose_train_config


def fake_timings(monkeypatch: pytest.MonkeyPatch, fp32: float, bf16: float) -> list[bool]:
    calls: list[bool] = []
    seconds = {False: fp32, True: bf16}

    def timed(bf16: bool, repeats: int = 3) -> float:
        calls.append(bf16)
        return seconds[bf16]

    monkeypatch.setattr(precision_auto, "conv_step_seconds", timed)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return calls


def test_explicit_precisions_pass_through_untouched(tmp_path) -> None:
    for value in ("32-true", "bf16-mixed", "16-mixed", 32):
        assert resolve_precision(value, "cpu", tmp_path) == value
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


def test_cpu_picks_bf16_only_where_it_measured_faster(tmp_path, monkeypatch) -> None:
    fake_timings(monkeypatch, fp32=1.0, bf16=0.5)
    assert resolve_precision("auto", "cpu", tmp_path / "amx") == "bf16-mixed"
    fake_timings(monkeypatch, fp32=1.0, bf16=2.0)  # bf16 at half the fp32 rate
    assert resolve_precision("auto", "cpu", tmp_path / "slow_bf16") == "32-true"
    fake_timings(monkeypatch, fp32=1.0, bf16=0.95)  # a 5% gain is noise: keep fp32
    assert resolve_precision("auto", "auto", tmp_path / "tie") == "32-true"
    (record_file,) = (tmp_path / "amx").glob("precision-*.json")
    record = json.loads(record_file.read_text())
    assert record["precision"] == "bf16-mixed" and record["bf16_speedup"] == 2.0


def test_the_answer_is_measured_once_then_read(tmp_path, monkeypatch) -> None:
    """A resumed run and ranks started after rank 0 must not re-measure into another answer."""
    calls = fake_timings(monkeypatch, fp32=1.0, bf16=0.5)
    assert resolve_precision("auto", "cpu", tmp_path) == "bf16-mixed"
    assert len(calls) == 2
    calls = fake_timings(monkeypatch, fp32=1.0, bf16=3.0)  # a loaded machine now: bf16 "slow"
    assert resolve_precision("auto", "cpu", tmp_path) == "bf16-mixed"
    assert calls == []


def test_gpus_choose_by_compute_capability(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "test GPU")
    monkeypatch.setattr(precision_auto, "conv_step_seconds", lambda *a, **k: pytest.fail("probe"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))
    assert resolve_precision("auto", "gpu", tmp_path) == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 0))  # V100
    assert resolve_precision("auto", "auto", tmp_path) == "32-true"
    assert resolve_precision("auto", "tpu", tmp_path) == "32-true"


def test_trainer_config_resolves_auto_from_the_composed_config(tmp_path, monkeypatch) -> None:
    fake_timings(monkeypatch, fp32=1.0, bf16=0.4)
    cfg = OmegaConf.create(
        {
            "paths": {"cache_dir": str(tmp_path)},
            "data": {"batch_size": 8},
            "model": {"n_critic": 1},
            "trainer": {"precision": "auto", "accelerator": "cpu", "max_steps": 3},
        }
    )
    assert trainer_config(cfg).precision == "bf16-mixed"
    assert cfg.trainer.precision == "auto"  # the saved config keeps what the user asked for


def test_preflight_accepts_auto_and_still_names_bad_values(tmp_path) -> None:
    validate_config(compose_train_config(["trainer.precision=auto"], tmp_path))
    with pytest.raises(ConfigError, match=r"trainer.precision.*bf17.*auto"):
        validate_config(compose_train_config(["trainer.precision=bf17"], tmp_path))


def test_the_probe_times_both_formats() -> None:
    for bf16 in (False, True):
        seconds = conv_step_seconds(bf16=bf16, repeats=1)
        assert math.isfinite(seconds) and 0.0 < seconds < 30.0
