"""`trainer.max_time` without `+`; `gan-train` from a non-editable `pip install .` (configs packaged)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gan_lab.errors import ConfigError
from gan_lab.preflight import validate_config
from gan_lab.train import CONFIG_PATH, train
from tests.conftest import TINY_MLP_GAN, compose_train_config

REPO = Path(__file__).resolve().parents[1]


def test_config_dir_is_the_clones_configs_folder() -> None:
    assert Path(CONFIG_PATH) == REPO / "configs"


def test_max_time_is_a_trainer_key_and_stops_the_run_before_max_steps(tmp_path: Path) -> None:
    cfg = compose_train_config(
        [*TINY_MLP_GAN, "trainer.max_time=00:00:00:02", "trainer.max_steps=1000000"],
        tmp_path / "run",
    )
    assert cfg.trainer.max_time == "00:00:00:02"
    start = time.perf_counter()
    metrics = train(cfg)
    assert 0 < metrics["g_step"] < 1_000_000
    assert time.perf_counter() - start < 60
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_max_time_alone_may_end_the_run_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    unlimited = ["trainer.max_steps=-1", "trainer.max_epochs=-1"]
    with pytest.raises(ConfigError, match=r"trainer\.max_steps=-1.*never ends"):
        validate_config(compose_train_config([*TINY_MLP_GAN, *unlimited], tmp_path / "a"))
    validate_config(
        compose_train_config([*TINY_MLP_GAN, *unlimited, "trainer.max_time=00:01:00:00"], tmp_path)
    )
    with pytest.raises(ConfigError, match=r"trainer.max_time='1h' is invalid: .*DD:HH:MM:SS"):
        validate_config(compose_train_config([*TINY_MLP_GAN, "trainer.max_time=1h"], tmp_path))


@pytest.mark.slow
def test_gan_train_runs_after_a_non_editable_pip_install(tmp_path: Path) -> None:
    """A fresh venv (torch, pip and setuptools from the system site-packages: the venv's bundled
    setuptools would shadow them), `pip install .` of a copy of the clone,
    then `gan-train` from an unrelated directory: the configs come from the wheel."""
    clone = tmp_path / "clone"
    for name in ("src", "configs"):
        shutil.copytree(REPO / name, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, clone / name)
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GAN_LAB_ROOT")}
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps"]
    subprocess.run([*pip, "--no-build-isolation", str(clone)], check=True, env=env, timeout=300)
    shutil.rmtree(clone)  # nothing may still point into the source tree
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def gan_train(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(venv / "bin" / "gan-train"), *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    job = gan_train("--cfg", "job")
    assert job.returncode == 0, job.stderr[-2000:]
    assert "_target_: gan_lab.models.gan_module.GANModule" in job.stdout
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "from gan_lab.train import CONFIG_PATH; print(CONFIG_PATH)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(venv)) and where.endswith("gan_lab/configs"), where
    assert (Path(where) / "model" / "generator" / "mlp.yaml").is_file()
    plugin = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import hydra_plugins.gan_lab_sweepers.resumable_optuna as m; print(m.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert plugin.startswith(str(venv)), plugin  # the resumable Optuna sweeper ships in the wheel
    run = gan_train(*TINY_MLP_GAN, "trainer.max_steps=2", "~callbacks.progress_bar")
    assert run.returncode == 0, run.stderr[-3000:]
    (ckpt,) = (elsewhere / "logs" / "train" / "runs").glob("*/checkpoints/last.ckpt")
    assert ckpt.stat().st_size > 0
