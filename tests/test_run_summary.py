"""Runs compared side by side: hyperparameters and final numbers in TensorBoard's HPARAMS view.

The view is computed by TensorBoard's own hparams backend (tests/tensorboard_view.py), i.e. what
the HPARAMS table and parallel-coordinates view list.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2

from gan_lab.hparams import overridden_keys, run_hyperparameters
from gan_lab.models.gan_module import GANModule
from gan_lab.train import train
from gan_lab.utils import swept_keys
from tests.conftest import TINY_MLP_GAN
from tests.tensorboard_view import hparams_view, metric_values


def last_scalar(logdir: Path, tag: str) -> float:
    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    events.Reload()
    return events.Scalars(tag)[-1].value


def test_hyperparameters_are_flat_typed_and_start_with_the_overrides(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg("model.optimizer_d.lr=4e-4", "model/loss=hinge")
    overrides = [
        "model.optimizer_d.lr=4e-4",
        "model/loss=hinge",
        "~callbacks.progress_bar",
        "hydra.run.dir=/tmp/x",
        "+ckpt_path=auto",
        "model=gan",
    ]
    choices = {"experiment": "mnist_mlp_gan", "logger": "csv", "data": "mnist", "model": "gan"}
    params = run_hyperparameters(cfg, overrides, {**choices, "model/generator": "mlp"})
    assert list(params)[:5] == [
        "model.optimizer_d.lr",
        "model/loss",
        "ckpt_path",
        "model/choice",
        "experiment",
    ]
    assert params["model.optimizer_d.lr"] == 4e-4 and params["model/loss"] == "hinge"
    assert params["ckpt_path"] == "auto" and "logger" not in params  # logger choice: not a knob
    assert params["model/choice"] == "gan" and "model" not in params  # beside model/loss
    assert params["model.generator._target_"] == "MLPGenerator"
    assert params["model.optimizer_d._target_"] == "Adam"
    assert params["model.n_critic"] == 1 and params["data.batch_size"] == 64
    assert params["model.optimizer_d.betas"] == "[0.5, 0.999]" and params["seed"] == 42
    assert params["model.grad_clip_g"] == "null"
    assert all(isinstance(v, bool | int | float | str) for v in params.values())
    assert not {"data.data_dir", "data.cache_dir", "trainer.default_root_dir"} & set(params)
    assert not any(k.endswith("._partial_") or k.startswith("hydra") for k in params)
    # MLflow's file store: a parameter "model" would collide with the folder of "model/loss"
    assert not [k for k in params if any(other.startswith(f"{k}/") for other in params)]
    assert overridden_keys(overrides) == [
        "model.optimizer_d.lr",
        "model/loss",
        "hydra.run.dir",
        "ckpt_path",
        "model",
    ]


def test_a_sweep_varies_its_sweeper_params_and_command_line_sweeps_only(tmp_path: Path) -> None:
    task = ["model.optimizer_d.lr=1e-4,4e-4", "trainer.max_steps=300", "seed=range(1,3)"]
    OmegaConf.save({"hydra": {"overrides": {"task": task}}}, tmp_path / "multirun.yaml")
    hydra_cfg = OmegaConf.create(
        {
            "mode": RunMode.MULTIRUN,
            "sweep": {"dir": str(tmp_path)},
            "sweeper": {"params": {"model/loss": "choice(hinge,lsgan)"}},
        }
    )
    assert swept_keys(hydra_cfg) == ["model/loss", "model.optimizer_d.lr", "seed"]
    hydra_cfg.mode = RunMode.RUN
    assert swept_keys(hydra_cfg) is None  # a single run: all its overrides count as varied


def test_a_finished_run_is_listed_in_hparams_with_its_final_numbers(tiny_gan_run: Path) -> None:
    logdir = tiny_gan_run / "tensorboard"
    experiment, groups = hparams_view(logdir)
    names = {h.name for h in experiment.hparam_infos}
    assert {
        "model.n_critic",
        "model.optimizer_d.lr",
        "data.batch_size",
        "trainer.max_steps",
    } <= names
    tags = [m.name.tag for m in experiment.metric_infos]
    assert tags[:1] == ["final/metrics/classifier_fd"]  # quality first: the view shows 5 columns
    assert {"final/loss/d", "final/loss/g", "final/D(x)", "final/g_step", "final/kimg"} <= set(tags)

    (group,) = groups
    values = metric_values(group)
    assert values["final/g_step"] == 4 and values["final/d_updates"] == 4
    assert values["final/kimg"] == pytest.approx(4 * 32 / 1000)  # batch 32, n_critic 1
    assert values["final/loss/d"] == pytest.approx(
        last_scalar(logdir, "loss/d")
    )  # logged each batch
    assert values["final/metrics/classifier_fd"] == pytest.approx(
        last_scalar(logdir, "metrics/classifier_fd")
    )
    assert all(math.isfinite(v) for v in values.values())
    assert group.hparams["trainer.max_steps"].number_value == 4
    assert group.hparams["model.generator._target_"].string_value == "MLPGenerator"
    assert [s.status for s in group.sessions] == [api_pb2.STATUS_SUCCESS]


def test_the_best_value_of_the_optimized_metric_is_reported(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, one_cpu_thread: None
) -> None:
    cfg = make_cfg(
        *TINY_MLP_GAN,
        "hparams_search=mnist_optuna",
        "trainer.max_steps=4",
        "callbacks.sample_distance.every_n_steps=1",
        "callbacks.sample_distance.num_samples=32",
        "callbacks.sample_distance.num_projections=16",
    )
    metrics = train(cfg)
    logdir = tmp_path / "run" / "tensorboard"
    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    events.Reload()
    values = [e.value for e in events.Scalars("sweep/pixel_swd")]
    assert len(values) == 5, values  # steps 1-4 and once more at the end
    assert min(values) < values[-1]  # (seed 42) the best is not the final value: seen mid-run
    assert metrics["best/sweep/pixel_swd"] == pytest.approx(min(values))
    assert metrics["sweep/pixel_swd"] == pytest.approx(values[-1])
    experiment, (group,) = hparams_view(logdir)
    tags = [m.name.tag for m in experiment.metric_infos]
    assert tags[:2] == ["best/sweep/pixel_swd", "final/sweep/pixel_swd"]  # the objective leads
    assert metric_values(group)["best/sweep/pixel_swd"] == pytest.approx(min(values))


def test_a_run_that_stopped_early_is_still_listed_with_its_hyperparameters(
    make_cfg: Callable[..., DictConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    one_cpu_thread: None,
) -> None:
    step = GANModule.training_step

    def crash_at_batch_3(self: GANModule, batch: object, batch_idx: int) -> None:
        if batch_idx == 3:
            raise RuntimeError("simulated crash")
        step(self, batch, batch_idx)

    monkeypatch.setattr(GANModule, "training_step", crash_at_batch_3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg(*TINY_MLP_GAN, "trainer.max_steps=10", "model.n_critic=2"))
    _, (group,) = hparams_view(tmp_path / "run" / "tensorboard")
    assert group.hparams["model.n_critic"].number_value == 2
    assert [s.status for s in group.sessions] == [api_pb2.STATUS_UNKNOWN]  # no end recorded


def test_final_scalars_keep_the_digits_of_float32_and_all_of_float64() -> None:
    from types import SimpleNamespace

    import torch

    from gan_lab.callbacks.run_summary import final_scalars

    trainer = SimpleNamespace(
        callback_metrics={
            "lr/g": torch.tensor(2e-4),  # float32: 0.00019999999494757503 when widened
            "loss/d": torch.tensor(0.1, dtype=torch.bfloat16),
            "kimg": torch.tensor(1 / 3, dtype=torch.float64),
            "grid": torch.zeros(2),  # not a scalar: left out
        }
    )
    metrics = final_scalars(trainer, SimpleNamespace())  # type: ignore[arg-type]
    assert json.dumps(metrics, sort_keys=True) == (
        '{"kimg": 0.3333333333333333, "loss/d": 0.100097656, "lr/g": 0.0002}'
    )
    assert torch.tensor(metrics["lr/g"]).item() == torch.tensor(2e-4).item()  # the same float32
