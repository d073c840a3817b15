"""Small helpers of the Hydra entry points: instantiate lists, print and save the config."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf

from gan_lab.errors import ConfigError, find_cause
from gan_lab.hparams import overridden_keys, override_key, run_hyperparameters

if TYPE_CHECKING:  # lightning is imported lazily: config errors should not wait for it
    import lightning as L
    from lightning.pytorch.loggers import Logger

log = logging.getLogger(__name__)

NETWORKS = ("generator", "discriminator")

TREE_ORDER = ("data", "model", "callbacks", "logger", "trainer", "paths", "experiment")


def instantiate_dict_of(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group such as ``callbacks`` or ``logger``."""
    if not cfg:
        return []
    return [
        hydra.utils.instantiate(node)
        for node in cfg.values()
        if isinstance(node, DictConfig) and "_target_" in node
    ]


def instantiate_callbacks(cfg: DictConfig | None) -> list[L.Callback]:
    return instantiate_dict_of(cfg)


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    return instantiate_dict_of(cfg)


def instantiate_model(cfg: DictConfig) -> L.LightningModule:
    """Build ``cfg.model``; a network's bad argument becomes a ConfigError naming the config key.

    Networks name their own argument (``image_size``); the user set a key: ``data.image_size``
    when the network's YAML reads it from there, else ``model.generator.<argument>``.
    """
    from gan_lab.models.nets.contract import NetworkArgumentError  # imports torch

    networks = {}
    for name in NETWORKS:
        try:
            networks[name] = hydra.utils.instantiate(cfg[name])
        except Exception as exc:
            error = find_cause(exc, NetworkArgumentError)
            if error is None:
                raise
            key = config_key(cfg[name], name, error.argument)
            raise ConfigError(key, error.value, error.fix) from exc
    return hydra.utils.instantiate(cfg, **networks)


def config_key(node: DictConfig, network: str, argument: str) -> str:
    """The key a user sets to change ``argument`` of ``model.<network>``."""
    raw = OmegaConf.to_container(node, resolve=False).get(argument)
    match = re.fullmatch(r"\$\{([\w.]+)\}", raw) if isinstance(raw, str) else None
    return match.group(1) if match else f"model.{network}.{argument}"


def config_tree(cfg: DictConfig, order: Sequence[str] = TREE_ORDER) -> rich.tree.Tree:
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    fields = [f for f in order if f in cfg] + [f for f in cfg if f not in order]
    for field in fields:
        branch = tree.add(str(field), style="bold")
        node = cfg[field]
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else str(node)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    return tree


def print_and_save_config(cfg: DictConfig, output_dir: Path) -> None:
    """Print the resolved config as a tree and keep it in the run dir (Hydra keeps the unresolved one)."""
    tree = config_tree(cfg)
    rich.print(tree)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    with open(output_dir / "config_tree.log", "w") as f:
        rich.print(tree, file=f)


def swept_keys(hydra_cfg: DictConfig) -> list[str] | None:
    """The keys a multirun varies (None outside one): the sweeper's ``params`` and the sweeps of
    the command line (``lr=1e-4,2e-4``, ``interval(...)``) as saved in the sweep's multirun.yaml."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    keys = [str(k) for k in (OmegaConf.select(hydra_cfg, "sweeper.params", default=None) or {})]
    multirun = Path(hydra_cfg.sweep.dir) / "multirun.yaml"
    if multirun.is_file():
        task = OmegaConf.select(OmegaConf.load(multirun), "hydra.overrides.task", default=[])
        overrides = OverridesParser.create().parse_overrides(list(task or []))
        keys += [o.key_or_group for o in overrides if o.is_sweep_override()]
    return list(dict.fromkeys(keys))


def run_summary_settings(cfg: DictConfig) -> dict[str, Any]:
    """The RunSummary callback's arguments: the flat hyperparameters (varied keys first), the
    varied keys (a sweep's swept ones; a single run's overrides) and the sweep's objective."""
    from hydra.core.hydra_config import HydraConfig

    overrides: list[str] = []
    choices: dict[str, Any] = {}
    varied: list[str] | None = None
    direction = "minimize"
    if HydraConfig.initialized():  # gan-train; not when a test composes the config itself
        hydra_cfg = HydraConfig.get()
        overrides, choices = list(hydra_cfg.overrides.task), dict(hydra_cfg.runtime.choices)
        varied = swept_keys(hydra_cfg)
        chosen = OmegaConf.select(hydra_cfg, "sweeper.direction", default=None)
        direction = str(chosen).lower() if str(chosen).lower() == "maximize" else "minimize"
    varied = overridden_keys(overrides) if varied is None else varied
    overrides.sort(key=lambda o: override_key(o) not in varied)  # stable: varied ones first
    return {
        "hparams": run_hyperparameters(cfg, overrides, choices),
        "varied": varied,
        "optimized_metric": cfg.get("optimized_metric"),
        "direction": direction,
    }
