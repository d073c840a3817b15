"""Every check of a command, run before Hydra creates or writes the run directory.

Hydra makes the run directory, writes ``.hydra/`` and opens the job log before it calls the
task function, so a check inside the task is already too late for "a bad input leaves the run
directory as it was". This Hydra callback (``configs/hydra/default.yaml``) runs the command's
preflight in ``on_run_start``, which comes before all of that; a failure is one line on stderr
and exit code 2. The task functions call the same preflight (for callers that skip Hydra's CLI);
it is remembered per config, so the CLI pays for it once.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from gan_lab.command_options import check_eval_options, check_sample_options
from gan_lab.distributed import is_rank_zero
from gan_lab.errors import run_cli

_PASSED: dict[str, Any] = {}


def _remembered(name: str, cfg: DictConfig, check: Callable[[DictConfig], Any]) -> Any:
    """The hook's result for this config, taken once by the task; else run the checks now."""
    key = name + "\n" + OmegaConf.to_yaml(cfg)
    if key in _PASSED:
        return _PASSED.pop(key)
    return check(cfg)


def _remember(name: str, cfg: DictConfig, check: Callable[[DictConfig], Any]) -> None:
    _PASSED[name + "\n" + OmegaConf.to_yaml(cfg)] = check(cfg)


def _train_checks(cfg: DictConfig) -> Any:
    from gan_lab.preflight import validate_config
    from gan_lab.preflight_run import check_checkpoint_fits, check_data, check_devices
    from gan_lab.run_lock import hold_run_dir
    from gan_lab.train import build_run

    validate_config(cfg)
    check_devices(cfg)
    parts = build_run(cfg)  # seeds; every constructor; ckpt_path resolved (loaded, digest checked)
    if is_rank_zero():  # DDP children: rank 0 checked the data, the checkpoint and holds the lock
        check_data(parts.datamodule, cfg.data.batch_size)
        check_checkpoint_fits(parts.model, parts.ckpt_path)
        hold_run_dir(Path(cfg.paths.output_dir))  # last: only a run that will start takes the dir
    return parts


def preflight_train(cfg: DictConfig) -> Any:
    """Config, devices, constructors, data, checkpoint, run-dir lock: the run's ``RunParts``."""
    return _remembered("train", cfg, _train_checks)


def _eval_checks(cfg: DictConfig) -> None:
    from gan_lab.data.sources import list_image_folder
    from gan_lab.eval import chosen_metrics  # each metric class checks its own options
    from gan_lab.folder_scoring import check_folder_settings
    from gan_lab.trained_model import read_run_checkpoint

    check_eval_options(cfg)
    check_folder_settings(cfg)
    chosen_metrics(cfg)
    if cfg.get("data_path"):
        list_image_folder(Path(str(cfg.data_path)).expanduser())
    if not cfg.get("compare_split") and not cfg.get("images"):
        read_run_checkpoint(cfg.ckpt_path, cfg.get("run_dir"))


def preflight_eval(cfg: DictConfig) -> None:
    _remembered("eval", cfg, _eval_checks)


def _sample_checks(cfg: DictConfig) -> None:
    from gan_lab.sample_inspection import check_truncation
    from gan_lab.trained_model import read_run_checkpoint

    check_sample_options(cfg)
    check_truncation(cfg.get("truncation"))
    read_run_checkpoint(cfg.ckpt_path, cfg.get("run_dir"))


def preflight_sample(cfg: DictConfig) -> None:
    _remembered("sample", cfg, _sample_checks)


CHECKS: dict[str, Callable[[DictConfig], Any]] = {
    "train": _train_checks,
    "eval": _eval_checks,
    "sample": _sample_checks,
}


def job_config(config: DictConfig) -> DictConfig:
    """The task's config as ``run_job`` will build it, with the run directory fixed now.

    ``hydra.run.dir`` holds ``${now:...}``: it is resolved once here and written back, so the
    directory checked (and locked) is the one Hydra then creates.
    """
    HydraConfig.instance().set_config(config)
    run_dir = os.path.abspath(str(OmegaConf.select(config, "hydra.run.dir")))
    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.run.dir = run_dir
        config.hydra.runtime.output_dir = run_dir
    HydraConfig.instance().set_config(config)
    task_cfg = copy.deepcopy(config)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    return task_cfg


class PreflightCallback(Callback):
    """``on_run_start``: the command's checks before the run directory exists or changes."""

    def on_run_start(
        self, config: DictConfig, config_name: str | None = None, **kwargs: Any
    ) -> None:
        if str(config_name) not in CHECKS:
            return
        made: list[Path] = []

        def checks(config: DictConfig) -> Any:
            cfg = job_config(config)
            run_dir = Path(cfg.paths.output_dir)
            if not run_dir.exists():
                made.append(run_dir)
            _remember(str(config_name), cfg, CHECKS[str(config_name)])

        try:
            run_cli(f"gan-{config_name}", checks, config, log_error=False)
        except SystemExit:
            for run_dir in made:  # the lock's folder, if a later check failed: only when empty
                with contextlib.suppress(OSError):
                    run_dir.rmdir()
            raise
