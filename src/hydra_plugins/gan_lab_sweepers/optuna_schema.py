"""The config schema of ``hydra/sweeper=gan_lab_optuna``: hydra-optuna-sweeper's own, plus the
options of gan-lab's resumable sweeper. Registered when Hydra scans ``hydra_plugins``; absent
(and the sweeper unusable) without the ``sweeps`` extra."""

# No ``from __future__ import annotations``: Hydra's plugin scan imports this module in a way that
# leaves it out of ``sys.modules`` while the dataclass is built, and string annotations make
# ``dataclasses`` look the module up there.
from dataclasses import dataclass

try:
    from hydra.core.config_store import ConfigStore
    from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf as _Base
except ImportError:  # hydra-optuna-sweeper not installed: register nothing
    _Base = None


def _register(base: type) -> None:
    """Store hydra-optuna-sweeper's schema extended by gan-lab's keys as ``gan_lab_optuna_schema``."""

    @dataclass
    class GanLabOptunaSweeperConf(base):
        _target_: str = "hydra_plugins.gan_lab_sweepers.resumable_optuna.ResumableOptunaSweeper"
        # a new study's trial 0 runs the composed recipe's own values of the searched parameters
        baseline_first: bool = False

    ConfigStore.instance().store(
        group="hydra/sweeper",
        name="gan_lab_optuna_schema",
        node=GanLabOptunaSweeperConf,
        provider="gan_lab",
    )


if _Base is not None:
    _register(_Base)
