"""Hydra's Optuna sweeper, made resumable: a study in a database can be stopped and continued.

Chosen by ``hydra.sweeper._target_`` (configs/hparams_search/mnist_optuna.yaml); everything else
is hydra-optuna-sweeper's own sweep loop. With ``hydra.sweeper.storage`` set:

- ``n_trials`` is the number of *completed* trials the study should reach, so rerunning the same
  command after a stop (Ctrl+C, a killed job) finishes the study instead of starting it again;
- a trial left RUNNING by an interrupted session is marked FAIL (it will never report);
- job directories are numbered by Optuna trial number, so the runs of all sessions have
  distinct names, and each session's sweep directory is recorded in the study
  (``gan_lab.optuna_study``) for the sweep summary, which then covers the whole study;
- the sampler is reseeded when a study continues, so a seeded sampler does not propose the
  first session's parameters again.

With ``baseline_first`` a new study's trial 0 runs the composed recipe's own values of the
searched parameters (in memory too), so every study holds the baseline its proposals must beat.

Without storage it behaves exactly like the upstream sweeper. Kept light at import time: Hydra
imports every module under ``hydra_plugins`` when it scans for plugins.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class ResumableOptunaSweeper(Sweeper):
    """Same settings as ``hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper``."""

    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: Any | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        search_space: DictConfig | None,
        custom_search_space: str | None,
        params: DictConfig | None,
        baseline_first: bool = False,
    ) -> None:
        from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl

        self.impl = OptunaSweeperImpl(
            sampler,
            direction,
            storage,
            study_name,
            n_trials,
            n_jobs,
            max_failure_rate,
            search_space,
            custom_search_space,
            params,
        )
        self.target_trials = n_trials
        self.baseline_first = baseline_first
        self.config: DictConfig | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.config = config

    def sweep(self, arguments: list[str]) -> None:
        if self.baseline_first and self.impl.storage is None:
            import optuna

            # an in-memory study the upstream loop loads by name, so trial 0 can be enqueued
            self.impl.storage = optuna.storages.InMemoryStorage()
            self.impl.study_name = self.impl.study_name or "gan_lab_sweep"
        if self.impl.storage is not None:
            self._continue_study()
        return self.impl.sweep(arguments)

    def _continue_study(self) -> None:
        from gan_lab.optuna_study import prepare_session, recipe_params

        impl = self.impl
        baseline = None
        if self.baseline_first:
            baseline = recipe_params(self.config, [str(k) for k in (impl.params or {})])
        first_job, remaining = prepare_session(
            impl.storage,
            impl.study_name,
            impl._get_directions(),
            self.target_trials,
            impl.sweep_dir,
            impl.sampler,
            baseline,
        )
        impl.job_idx, impl.n_trials = first_job, remaining
        if remaining == 0:  # nothing to launch: the sweep directory still gets its results file
            Path(impl.sweep_dir).mkdir(parents=True, exist_ok=True)
