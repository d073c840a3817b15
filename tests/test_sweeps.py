"""Sweeps: multirun with DDP finishes, the Optuna search returns its metric, the summary tables,
the SLURM launcher renders to an sbatch script."""

from __future__ import annotations

import csv
import json
import logging
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from gan_lab.metrics.sliced_wasserstein import sliced_wasserstein
from gan_lab.sweep_summary import main as summary_main
from gan_lab.sweep_summary import summarize
from gan_lab.train import CONFIG_PATH, main, run
from tests.conftest import data_overrides, run_cli
from tests.tensorboard_view import hparams_view, metric_values

QUIET = ("~callbacks.progress_bar", "trainer.enable_model_summary=false")


def gan_train(args: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    return run_cli(args, cwd, timeout, PYTHONWARNINGS="ignore")


def only_sweep_dir(root: Path) -> Path:
    sweeps = list((root / "logs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


# ------------------------------------------------------------------------------ multirun + DDP
MULTIRUN_DDP = [
    "-m",
    "experiment=mnist_mlp_gan",
    "model.optimizer_g.lr=1e-4,2e-4",
    "trainer=ddp_cpu",
    "trainer.max_steps=20",
]


def gan_train_in_process(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`gan-train <args>` in this process (no new torch import), with logs/ under ``cwd``."""
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("GAN_LAB_ROOT", str(cwd))
    monkeypatch.setattr(sys, "argv", ["gan-train", *args])
    GlobalHydra.instance().clear()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        main()
    finally:  # Hydra configured logging for its jobs; give pytest its own back
        for handler in set(root.handlers) - set(handlers):
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        GlobalHydra.instance().clear()


def check_multirun_finished_every_job(root: Path) -> None:
    sweep = only_sweep_dir(root)
    jobs = sorted(p for p in sweep.iterdir() if p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    for job in jobs:
        assert json.loads((job / "metrics.json").read_text())["g_step"] == 20
        assert len(list((job / "tensorboard").glob("events.out.tfevents.*"))) == 1
        names = [p.name for p in (job / "checkpoints").iterdir()]
        assert "last.ckpt" in names and not any("-v" in n for n in names), names  # one set
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(float(r["model.optimizer_g.lr"]) for r in rows) == [1e-4, 2e-4]
    assert all(float(r["g_step"]) == 20 for r in rows)
    # TensorBoard's HPARAMS view of the sweep: one row per run, the swept key listed first
    experiment, groups = hparams_view(sweep / "tensorboard")
    assert {h.name for h in experiment.hparam_infos if h.differs} == {"model.optimizer_g.lr"}
    lrs = sorted(g.hparams["model.optimizer_g.lr"].number_value for g in groups)
    assert lrs == [1e-4, 2e-4]
    assert all(metric_values(g)["final/g_step"] == 20 for g in groups)
    assert all(math.isfinite(metric_values(g)["final/loss/d"]) for g in groups)


def test_multirun_with_ddp_finishes_every_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lightning-hydra-template hang: each DDP job must run once, in processes of its own.

    In-process `gan-train -m ...` with the DDP processes forked instead of spawned (the same
    multirun + DDP structure without importing torch again per process, which costs ~10 s
    apiece on a busy 2-core machine); the slow test below runs the spawned default as a user does.
    """
    extra = ["trainer.strategy.start_method=fork", *data_overrides("mnist"), *QUIET]
    gan_train_in_process([*MULTIRUN_DDP, *extra], tmp_path, monkeypatch)
    check_multirun_finished_every_job(tmp_path)


@pytest.mark.slow
def test_multirun_with_spawned_ddp_cpu_finishes_every_job(tmp_path: Path) -> None:
    result = gan_train([*MULTIRUN_DDP, *data_overrides("mnist"), *QUIET], tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    check_multirun_finished_every_job(tmp_path)


# ------------------------------------------------------------------------------ Optuna
def _compose(overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_optuna_search_space_and_metric_compose() -> None:
    cfg = _compose(["hparams_search=mnist_optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "minimize"
    assert (
        sweeper.storage is None
    )  # in-memory by default; a database resumes (test_resumable_sweeps)
    assert set(sweeper.params) >= {"model.optimizer_g.lr", "model.optimizer_d.lr", "model/loss"}
    assert cfg.optimized_metric == "sweep/pixel_swd"
    assert cfg.callbacks.sample_distance.name == cfg.optimized_metric


def test_train_returns_the_optimized_metric(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = make_cfg(
        "hparams_search=mnist_optuna",
        "trainer.max_steps=3",
        "callbacks.sample_distance.num_samples=64",
        "data.batch_size=16",
        dataset="mnist",
    )
    value = run(cfg)
    assert isinstance(value, float) and 0.0 < value < 2.0  # pixels in [-1, 1]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["sweep/pixel_swd"] == pytest.approx(value)


def test_sliced_wasserstein_is_zero_for_equal_sets_and_grows_with_shift() -> None:
    x = torch.rand(256, 1, 8, 8) * 2 - 1
    assert sliced_wasserstein(x, x[torch.randperm(256)]).item() == pytest.approx(0.0, abs=1e-6)
    near, far = sliced_wasserstein(x, x + 0.1), sliced_wasserstein(x, x + 0.5)
    assert 0 < near < far
    with pytest.raises(ValueError, match="same shape"):
        sliced_wasserstein(x, x[:10])


# ------------------------------------------------------------------------------ summary
def _fake_sweep(root: Path) -> Path:
    """A multirun directory as Hydra and gan-train leave it: 3 jobs, one failed."""
    sweep = root / "sweep"
    lrs = {"0": ("1e-4", 0.30), "1": ("2e-4", 0.10), "2": ("4e-4", None)}
    for job, (lr, swd) in lrs.items():
        (sweep / job / ".hydra").mkdir(parents=True)
        overrides = [f"model.optimizer_g.lr={lr}", "trainer=ddp_cpu"]
        (sweep / job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        (sweep / job / "tensorboard").mkdir()
        if swd is not None:
            metrics = {"sweep/pixel_swd": swd, "loss/d": 1.2, "g_step": 20.0, "lr/d": 2e-4}
            (sweep / job / "metrics.json").write_text(json.dumps(metrics))
    multirun = {
        "optimized_metric": "sweep/pixel_swd",
        "hydra": {"sweeper": {"direction": "minimize"}},
    }
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    return sweep


def test_summary_sorts_runs_by_the_optimized_metric(tmp_path: Path) -> None:
    sweep = _fake_sweep(tmp_path)
    summary = summarize(sweep)
    assert [r.job for r in summary.runs] == ["1", "0", "2"]  # best first, failed last

    with open(summary.csv_path) as f:
        rows = list(csv.DictReader(f))
    assert [(r["job"], r["model.optimizer_g.lr"], r["sweep/pixel_swd"]) for r in rows] == [
        ("1", "2e-4", "0.1"),
        ("0", "1e-4", "0.3"),
        ("2", "4e-4", ""),
    ]
    assert rows[2]["status"].startswith("no metrics")
    assert rows[0]["lr/d"] == "0.0002"  # the CSV has every metric, the Markdown the main ones
    markdown = summary.markdown_path.read_text()
    header = "| rank | job | status | model.optimizer_g.lr | sweep/pixel_swd | g_step | loss/d |"
    assert header in markdown
    assert "| 1 | 1 | ok | 2e-4 | 0.1 | 20 | 1.2 |" in markdown
    assert "Common overrides: `trainer=ddp_cpu`" in markdown

    links = sorted(p.name for p in summary.tensorboard_dir.iterdir())
    assert links == ["0_lr=1e-4", "1_lr=2e-4", "2_lr=4e-4"]
    assert (summary.tensorboard_dir / "1_lr=2e-4").resolve() == (
        sweep / "1" / "tensorboard"
    ).resolve()

    maximized = summarize(sweep, direction="maximize")
    assert [r.job for r in maximized.runs] == ["0", "1", "2"]


def test_summary_of_an_optuna_sweep_reads_metric_and_direction_from_the_jobs(
    tmp_path: Path,
) -> None:
    sweep = _fake_sweep(tmp_path)
    (sweep / "multirun.yaml").unlink()  # the Optuna sweeper writes none
    for job in ("0", "1", "2"):
        hydra_dir = sweep / job / ".hydra"
        (hydra_dir / "config.yaml").write_text(yaml.safe_dump({"optimized_metric": "loss/d"}))
        direction = {"hydra": {"sweeper": {"direction": "maximize"}}}
        (hydra_dir / "hydra.yaml").write_text(yaml.safe_dump(direction))
    summary = summarize(sweep)
    assert (summary.metric, summary.direction) == ("loss/d", "maximize")


def test_summary_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert summary_main([str(_fake_sweep(tmp_path)), "--metric", "loss/d"]) == 0
    assert "Sorted by `loss/d` (minimize)" in capsys.readouterr().out
    assert summary_main([str(tmp_path / "nothing")]) == 2
    assert "holds no Hydra jobs" in capsys.readouterr().err


# ------------------------------------------------------------------------------ SLURM
def test_slurm_launcher_renders_an_sbatch_script_for_multi_node_ddp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [
        "hydra/launcher=slurm",
        "trainer=ddp",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=720",
        "--cfg",
        "hydra",
    ]
    result = gan_train(args, tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    launcher = yaml.safe_load(result.stdout)["hydra"]["launcher"]
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["partition"] == "gpu" and launcher["timeout_min"] == 720
    assert launcher["nodes"] == "${trainer.num_nodes}"  # resources follow the trainer
    assert launcher["tasks_per_node"] == launcher["gpus_per_node"] == "${trainer.devices}"

    # What submitit makes of these settings (the launcher's own translation, minus sbatch).
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    cfg = _compose(args[:-2])
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    init = {"slurm_max_num_timeout": params.pop("max_num_timeout")}
    params = {k: v for k, v in params.items() if k not in ("_target_", "submitit_folder")}
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    params = {k if k in base else f"slurm_{k}": v for k, v in params.items()}
    no_srun_here = classmethod(lambda cls: 2)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", no_srun_here)
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm", **init)
    executor.update_parameters(**params)
    script = executor._executor._make_submission_file_text("gan-train ...", "uid")
    for line in (
        "--nodes=2",
        "--ntasks-per-node=4",
        "--gpus-per-node=4",
        "--time=720",
        "--partition=gpu",
    ):
        assert f"#SBATCH {line}" in script


@pytest.mark.slow
def test_optuna_sweep_of_three_trials_is_summarized(tmp_path: Path) -> None:
    args = [
        "-m",
        "hparams_search=mnist_optuna",
        "hydra.sweeper.n_trials=3",
        "trainer.max_steps=30",
        *data_overrides("mnist"),
        *QUIET,
    ]
    result = gan_train(args, tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = only_sweep_dir(tmp_path)
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    values = [float(r["sweep/pixel_swd"]) for r in rows]
    assert values == sorted(values)  # best (lowest) first
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())["best_value"]
    assert best == pytest.approx(values[0], rel=1e-5)
    assert len(list((sweep / "tensorboard").iterdir())) == 3
