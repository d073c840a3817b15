"""Small helpers of the Hydra entry points: instantiate lists, print and save the config."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:  # lightning is imported lazily: config errors should not wait for it
    import lightning as L
    from lightning.pytorch.loggers import Logger

log = logging.getLogger(__name__)

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
