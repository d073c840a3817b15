"""An Optuna study across sweep sessions: what a continued session starts from, and where the
runs of all earlier sessions live (for the sweep summary).

Used by the resumable sweeper (src/hydra_plugins/gan_lab_sweepers) and by sweep_summary.py.
Needs optuna (the ``sweeps`` extra) only when a sweep uses a database.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

log = logging.getLogger(__name__)

# study user attribute: the sweep directory of every session, in order
SWEEP_DIRS = "gan_lab_sweep_dirs"


def prepare_session(
    storage: Any,
    study_name: str | None,
    directions: list[str],
    target_trials: int,
    sweep_dir: str,
    sampler: Any,
    baseline: dict[str, Any] | None = None,
) -> tuple[int, int]:
    """(first job number, trials to run) for this session of the study; records ``sweep_dir``.

    Stale RUNNING trials (an interrupted session) are marked FAIL; completed and pruned trials
    count towards ``target_trials``. ``baseline`` (searched parameter -> value) becomes the first
    trial of a new study; a continued study already has it.
    """
    import optuna
    from optuna.trial import TrialState

    study = optuna.create_study(
        study_name=study_name, storage=storage, directions=directions, load_if_exists=True
    )
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        log.warning(
            "trial %d of study %r was left RUNNING by an interrupted session: marked FAIL",
            trial.number,
            study.study_name,
        )
        study.tell(trial.number, state=TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    if baseline and not trials:
        log.info("trial 0 of study %r is the recipe as composed: %s", study.study_name, baseline)
        with warnings.catch_warnings():  # enqueue_trial is "experimental" in optuna 2.10
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.enqueue_trial(baseline)
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    remaining = max(0, target_trials - done)
    if trials:
        log.info(
            "continuing study %r: %d of %d trials done, %d to run (jobs from %d)",
            study.study_name, done, target_trials, remaining, len(trials),
        )  # fmt: skip
        if hasattr(sampler, "reseed_rng"):  # a seeded sampler would repeat session 1's draws
            sampler.reseed_rng()
    sweep_dirs = list(study.user_attrs.get(SWEEP_DIRS, []))
    here = str(Path(sweep_dir).resolve())
    if here not in sweep_dirs:
        study.set_user_attr(SWEEP_DIRS, [*sweep_dirs, here])
    return len(trials), remaining


def study_sweep_dirs(sweep_dir: Path) -> list[Path]:
    """Every session's sweep directory of the Optuna study ``sweep_dir`` belongs to (in order),
    or just ``sweep_dir`` when its sweep kept no study in a database."""
    hydra_files = sorted(sweep_dir.glob("*/.hydra/hydra.yaml"))
    if not hydra_files:
        return [sweep_dir]
    sweeper = OmegaConf.load(hydra_files[0]).hydra.get("sweeper", {})
    storage, name = sweeper.get("storage"), sweeper.get("study_name")
    if not storage or not str(sweeper.get("_target_", "")).endswith("ResumableOptunaSweeper"):
        return [sweep_dir]
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        recorded = optuna.load_study(study_name=name, storage=storage).user_attrs.get(
            SWEEP_DIRS, []
        )
    except Exception as err:  # the database moved or is unreadable: this session's runs only
        log.warning("cannot read study %r from %s (%s): summarising %s only", name, storage, err, sweep_dir)  # fmt: skip
        return [sweep_dir]
    dirs = [Path(d) for d in recorded if Path(d).is_dir()]
    here = sweep_dir.resolve()
    return dirs if here in dirs else [*dirs, here]


def recipe_params(config: Any, names: list[str]) -> dict[str, Any]:
    """The composed config's own value of each searched parameter: a config group's chosen
    option (``model/loss``) or a key's value (``model.optimizer_g.betas.0``)."""
    from gan_lab.errors import ConfigError

    choices = OmegaConf.select(config, "hydra.runtime.choices") or {}
    out: dict[str, Any] = {}
    for name in names:
        value = choices.get(name) if "/" in name else OmegaConf.select(config, name)
        if value is None or OmegaConf.is_config(value):
            raise ConfigError(
                "hydra.sweeper.baseline_first",
                True,
                f"the composed config has no single value of the searched {name!r} to start the "
                "study from; set it, or run with hydra.sweeper.baseline_first=false",
            )
        out[name] = value
    return out
