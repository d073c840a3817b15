"""Instantiate a config read from a file, allowing only the project's own building blocks.

A checkpoint's ``run_config`` is data from disk: ``torch.load(weights_only=True)`` keeps pickled
code out, but ``hydra.utils.instantiate`` would still call whatever ``_target_`` the file names
(``builtins.open``, ``os.system``, ``shutil.rmtree`` ...). So before instantiating, every node of
the tree (nested dicts and lists, ``_args_`` included) is checked: each ``_target_`` must name a
class *defined* in an allowed module (a re-export such as ``gan_lab.models.nets.mlp.torch.save``
resolves to ``torch.serialization`` and is refused), no string may carry an OmegaConf interpolation
(a stored config is resolved, so ``${...}`` can only be an attempt to build a target at load time).
"""

from __future__ import annotations

import inspect
from typing import Any

import hydra
from hydra.utils import get_object
from omegaconf import OmegaConf

from gan_lab.errors import UserError

# Modules whose *classes* a stored config may name: the networks, losses, regularizers,
# augmentations and the GAN module (gan_lab.models), the datamodule and its data sources
# (gan_lab.data), and PyTorch's optimizers and LR schedulers. Functions are refused: a
# module-level function such as a cache writer would take a path from the file.
ALLOWED_MODULES = ("gan_lab.models", "gan_lab.data", "torch.optim")
SPECIAL_KEYS = ("_target_", "_args_", "_partial_", "_convert_", "_recursive_")


class UnsafeConfigError(UserError):
    """A stored config names a callable outside the allow-list (or tries to build one)."""


def _in_allowed_module(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in ALLOWED_MODULES)


def check_target(target: Any, key: str, source: str) -> None:
    """``target`` names a class defined in an allowed module; imports nothing else."""
    refuse = f"{source}: {key}={target!r} is not allowed"
    fix = f"a stored config may only name classes of {', '.join(ALLOWED_MODULES)}"
    if not isinstance(target, str) or not _in_allowed_module(target.rpartition(".")[0]):
        raise UnsafeConfigError(f"{refuse}; {fix}")
    try:
        obj = get_object(target)  # imports only gan_lab.* / torch.optim.* modules (checked above)
    except Exception:
        raise UnsafeConfigError(f"{refuse}: it does not exist in this version of gan-lab") from None
    where = getattr(obj, "__module__", None) or type(obj).__name__
    if not _in_allowed_module(where):
        raise UnsafeConfigError(f"{refuse}: it resolves to {where}, outside the allow-list; {fix}")
    if not inspect.isclass(obj):
        raise UnsafeConfigError(f"{refuse}: it is a {type(obj).__name__}, not a class; {fix}")


def check_tree(node: Any, key: str, source: str) -> None:
    """Walk every dict and list below ``node``; refuse foreign targets and interpolations."""
    if isinstance(node, dict):
        if "_target_" in node:
            check_target(node["_target_"], f"{key}._target_", source)
        for name, child in node.items():
            if not isinstance(name, str):
                raise UnsafeConfigError(f"{source}: {key} has a non-string key {name!r}")
            check_tree(child, f"{key}.{name}", source)
    elif isinstance(node, list | tuple):
        for i, child in enumerate(node):
            check_tree(child, f"{key}[{i}]", source)
    elif isinstance(node, str) and "${" in node:
        raise UnsafeConfigError(
            f"{source}: {key}={node!r} is an interpolation; a stored config holds resolved values only"
        )
    elif not (node is None or isinstance(node, bool | int | float | str)):
        raise UnsafeConfigError(f"{source}: {key} holds a {type(node).__name__}, not plain data")


def instantiate_stored(tree: Any, key: str, source: str) -> Any:
    """``hydra.utils.instantiate`` of ``tree`` after :func:`check_tree` accepted all of it."""
    if not isinstance(tree, dict):
        raise UnsafeConfigError(f"{source}: {key} is a {type(tree).__name__}, not a config mapping")
    check_tree(tree, key, source)
    return hydra.utils.instantiate(OmegaConf.create(tree))
