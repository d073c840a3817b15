"""How `gan-train` processes are started under DDP, checked before any work.

Lightning's default DDP launcher (``start_method: popen``) re-runs the command line once per
extra device. Under Hydra multirun (``-m``) that command line is the whole sweep, so every child
starts its own sweep and the jobs never meet (the hang reported for lightning-hydra-template).
Spawned processes (``start_method: spawn``, as in ``trainer=ddp_cpu``) or processes created by
the cluster (SLURM through ``hydra/launcher=slurm``, torchrun) run only the current job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf

from gan_lab.errors import ConfigError

# Lightning's start methods of strategies given by name (trainer.strategy=ddp etc.).
_NAMED_START_METHODS = {
    "ddp": "popen",
    "ddp_spawn": "spawn",
    "ddp_fork": "fork",
    "ddp_notebook": "fork",
}
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def is_rank_zero(env: Mapping[str, str] | None = None) -> bool:
    """True unless a launcher marked this process as another rank (works before Lightning starts)."""
    env = os.environ if env is None else env
    return all(env.get(key, "0") == "0" for key in _RANK_VARIABLES)


def processes_created_externally(env: Mapping[str, str] | None = None) -> bool:
    """SLURM tasks, torchrun workers or Lightning's own children: no launcher re-runs the script."""
    env = os.environ if env is None else env
    slurm = "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive")
    torchrun = all(k in env for k in ("RANK", "GROUP_RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"))
    return slurm or torchrun or "LOCAL_RANK" in env


def start_method(cfg: DictConfig) -> str | None:
    """The DDP start method of ``trainer.strategy``, or None when it is not DDP."""
    strategy = OmegaConf.select(cfg, "trainer.strategy", default=None)
    if isinstance(strategy, str):
        name = strategy.split("_find_unused")[0]
        return _NAMED_START_METHODS.get(name)
    if isinstance(strategy, DictConfig) and str(strategy.get("_target_", "")).endswith(
        "DDPStrategy"
    ):
        return str(strategy.get("start_method", "popen"))
    return None


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check_ddp_launch(
    cfg: DictConfig, multirun: bool | None = None, env: Mapping[str, str] | None = None
) -> None:
    """Refuse the combination that hangs: Hydra multirun + DDP processes started by re-running the script."""
    devices = OmegaConf.select(cfg, "trainer.devices", default=1)
    if devices == 1 or start_method(cfg) != "popen":
        return
    if not (_is_multirun() if multirun is None else multirun) or processes_created_externally(env):
        return
    strategy = OmegaConf.select(cfg, "trainer.strategy")
    key, value, fix = (
        ("trainer.strategy", strategy, "trainer.strategy=ddp_spawn")
        if isinstance(strategy, str)
        else ("trainer.strategy.start_method", "popen", "trainer.strategy.start_method=spawn")
    )
    raise ConfigError(
        key,
        value,
        "Hydra multirun (-m) cannot re-run the script per device (each copy would start the whole sweep); "
        f"use {fix}, or run each job on a cluster with hydra/launcher=slurm",
    )
