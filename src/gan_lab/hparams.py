"""The flat hyperparameters a run is compared by: what TensorBoard's HPARAMS, MLflow and W&B list.

One flat ``{key: bool | int | float | str}`` per run, the types every logger accepts:

- the run's command-line overrides first (``model.optimizer_d.lr``, ``model/loss``: the keys a
  sweep varies), with their resolved values;
- the config-group choices (``experiment``, ``model/generator``, ``data``, ...);
- every setting of ``data``, ``model`` and ``trainer`` plus ``seed``, flattened with dots.
  A ``_target_`` keeps its key with the class name as value (``model.generator._target_:
  MLPGenerator``); machine-specific paths and Hydra plumbing (``_partial_``) are left out.

No key is a prefix of another at a ``/``: MLflow's file store keeps ``model/loss`` as a file
``loss`` in a folder ``model``, which a parameter named ``model`` would collide with.

Plain OmegaConf: the Hydra entry point passes the overrides and choices in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

Scalar = bool | int | float | str
SECTIONS = ("data", "model", "trainer")
# where a run happens, not how it trains: different on every machine, never worth a column
MACHINE_KEYS = ("data.data_dir", "data.cache_dir", "trainer.default_root_dir")
# config groups whose choice says something about the training (not logger, paths, hydra/*)
CHOICE_GROUPS = ("experiment", "data", "trainer", "hparams_search")
# overrides that place a run or steer Hydra rather than set a hyperparameter
PLUMBING = ("hydra", "paths.")


def scalar(value: Any) -> Scalar:
    """A value every logger takes: numbers, bools and strings as they are, the rest as text."""
    if isinstance(value, bool | int | float | str):
        return value
    if value is None:
        return "null"
    return str(value)


def flatten(node: Any, prefix: str) -> dict[str, Scalar]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; ``_target_`` -> the class name; ``_partial_`` dropped."""
    if not isinstance(node, Mapping):
        return {prefix: scalar(node)}
    flat: dict[str, Scalar] = {}
    for key, value in node.items():
        if key == "_partial_":
            continue
        if key == "_target_":  # the class name; its key never clashes with a group choice
            flat[f"{prefix}._target_"] = str(value).rsplit(".", 1)[-1]
            continue
        flat.update(flatten(value, f"{prefix}.{key}"))
    return flat


def override_key(override: str) -> str | None:
    """``model.optimizer_d.lr=4e-4`` -> ``model.optimizer_d.lr``; deletions (``~key``) -> None."""
    key = override.split("=", 1)[0].strip()
    if key.startswith("~") or "=" not in override:
        return None
    return key.lstrip("+")


def run_hyperparameters(
    cfg: DictConfig,
    overrides: Sequence[str] = (),
    choices: Mapping[str, str | None] | None = None,
) -> dict[str, Scalar]:
    """The run's flat hyperparameters: overrides first, then group choices, then the settings."""
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    settings: dict[str, Scalar] = {}
    for section in SECTIONS:
        if section in container:
            settings.update(flatten(container[section], section))
    if "seed" in container:
        settings["seed"] = scalar(container["seed"])
    for key in MACHINE_KEYS:
        settings.pop(key, None)

    params: dict[str, Scalar] = {}
    for override in overrides:
        key = override_key(override)
        if key is None:
            continue
        if key in settings:
            params[key] = settings[key]
        elif not key.startswith(PLUMBING):
            value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
            # a group choice (model/loss=hinge, data=cifar10) names an option, not a value
            chosen = isinstance(value, DictConfig) or value is None
            params[key] = scalar(override.split("=", 1)[1] if chosen else value)
    for group, choice in (choices or {}).items():
        if group in CHOICE_GROUPS or group.startswith("model/"):
            params.setdefault(group, scalar(choice))
    for key, value in settings.items():
        params.setdefault(key, value)
    # a top-level group override (model=gan) beside model/loss: keep both, as files MLflow can write
    clashing = {k for k in params if any(other.startswith(f"{k}/") for other in params)}
    return {(f"{k}/choice" if k in clashing else k): v for k, v in params.items()}


def overridden_keys(overrides: Sequence[str]) -> list[str]:
    """The keys a run's overrides set (what a sweep varies), in command-line order."""
    return [key for key in map(override_key, overrides) if key is not None]
