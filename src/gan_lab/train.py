"""`gan-train`: compose -> validate -> instantiate -> save the config -> fit. No training logic here."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from gan_lab.config_dir import find_config_dir
from gan_lab.distributed import is_rank_zero
from gan_lab.errors import UserError, run_cli
from gan_lab.hydra_errors import run_hydra_entry
from gan_lab.machine import write_machine_record
from gan_lab.preflight import validate_config
from gan_lab.preflight_hook import preflight_train
from gan_lab.run_lock import release_run_dir
from gan_lab.sweep_jobs import in_multirun, run_recorded
from gan_lab.sweep_summary import take_sweep_outcome, write_run_metrics
from gan_lab.trainer_args import trainer_config
from gan_lab.utils import (
    instantiate_callbacks,
    instantiate_loggers,
    instantiate_model,
    print_and_save_config,
    run_summary_settings,
)

log = logging.getLogger(__name__)

CONFIG_PATH = find_config_dir()
# Exit status of a run stopped by SIGTERM/SIGINT/SIGUSR1 after saving last.ckpt (128 + SIGTERM, the
# shell's convention): job chains can tell a pre-empted run (resume it) from a finished one (0).
PREEMPTED_EXIT_CODE = 143


def resolve_ckpt_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """``last``/``auto``: the newest checkpoint of this run directory that loads (see checkpoint_io)."""
    from gan_lab.checkpoint_io import resolve_resume_path  # imports torch

    return resolve_resume_path(ckpt_path, output_dir)


@dataclass
class RunParts:
    """What ``gan-train`` builds before it writes anything: every constructor check has run."""

    datamodule: Any
    model: Any
    callbacks: list[Any]
    ckpt_path: str | None


def build_run(cfg: DictConfig) -> RunParts:
    """Seed, then instantiate data module, model and callbacks (reads files, writes none).

    Constructors own their arguments, so a bad value raises here: after :func:`validate_config`,
    before the config is saved, before any data loads (the data module loads in ``setup``).
    """
    import lightning as L  # heavy: imported once the config is known to be valid

    from gan_lab.callbacks import RunConfigInCheckpoint
    from gan_lab.callbacks.resume_state import ResumeState
    from gan_lab.callbacks.run_summary import RunSummary

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), Path(cfg.paths.output_dir))
    if cfg.get("seed") is not None:
        # quiet: this runs in the preflight, before Hydra routes log records to the run's log,
        # where Lightning's own "Seed set to" line would be a second line on stderr
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        log.info("seed %d", cfg.seed)

    log.info("instantiating datamodule <%s>", cfg.data._target_)
    datamodule = hydra.utils.instantiate(cfg.data)
    log.info("instantiating model <%s>", cfg.model._target_)
    model = instantiate_model(cfg.model)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    callbacks.append(RunConfigInCheckpoint(OmegaConf.to_container(cfg, resolve=True)))
    callbacks.append(ResumeState())  # RNG states and TensorBoard restart marker: exact resume
    # hyperparameters to every logger; final numbers, kimg and TensorBoard's HPARAMS at the end
    callbacks.append(RunSummary(**run_summary_settings(cfg)))
    return RunParts(datamodule, model, callbacks, ckpt_path)


def fit(cfg: DictConfig, parts: RunParts) -> dict[str, float]:
    """Loggers, Trainer, ``trainer.fit``; returns the final logged scalars."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from gan_lab.callbacks.run_summary import final_scalars
    from gan_lab.lightning_internals import fit_as_gan_train
    from gan_lab.loggers import finish_runs

    output_dir = Path(cfg.paths.output_dir)
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer = hydra.utils.instantiate(
        trainer_config(cfg), callbacks=parts.callbacks, logger=loggers
    )
    try:
        # hooks reach only the callbacks that define them (lightning_internals.py)
        fit_as_gan_train(trainer, parts.model, parts.datamodule, parts.ckpt_path)
    except SIGTERMException:
        log.warning(
            "stopped by a signal at generator step %d; last.ckpt is resumable: rerun with "
            "hydra.run.dir=%s ckpt_path=last",
            trainer.global_step,
            output_dir,
        )
        raise SystemExit(PREEMPTED_EXIT_CODE) from None
    finally:
        finish_runs(trainer.loggers)
    metrics = final_scalars(trainer, parts.model)
    # spawned DDP: the counters live in rank 0, which returns its callback metrics
    log.info(
        "finished: G step %d, %d D updates, %.1f kimg; outputs in %s",
        int(metrics.get("g_step", trainer.global_step)),
        int(metrics.get("d_updates", 0)),
        metrics.get("kimg", 0.0),
        output_dir,
    )
    return metrics


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the configured GAN; returns the final logged scalars (for sweeps and tests)."""
    validate_config(cfg)
    return fit(cfg, build_run(cfg))


def train_and_record(cfg: DictConfig) -> dict[str, float]:
    """Check and build once, save the config, fit, leave the final scalars in the run dir.

    The checks and the build ran in Hydra's ``on_run_start`` (preflight_hook.py) before the run
    directory was made; outside the CLI they run here, still before anything is written.
    """
    parts = preflight_train(cfg)  # config, devices, constructors, data, checkpoint, run-dir lock
    try:
        if cfg.get("print_config", True) and is_rank_zero():  # DDP ranks as processes: once
            print_and_save_config(cfg, Path(cfg.paths.output_dir))
            write_machine_record(Path(cfg.paths.output_dir))
        metrics = fit(cfg, parts)
        from gan_lab.callbacks.best_checkpoint import best_checkpoint_record  # imports torch

        record = best_checkpoint_record(parts.callbacks, metrics)  # best.ckpt's step and value
        write_run_metrics({**metrics, **record}, Path(cfg.paths.output_dir))
    finally:
        release_run_dir(Path(cfg.paths.output_dir))
    return metrics


def train_and_score(cfg: DictConfig) -> float | None:
    """:func:`train_and_record`, then the value of ``optimized_metric`` (for sweepers)."""
    metrics = train_and_record(cfg)
    metric_name = cfg.get("optimized_metric")
    if not metric_name:
        return None
    if metric_name not in metrics:
        raise UserError(
            f"optimized_metric={metric_name!r} was not logged; logged: {', '.join(sorted(metrics))}"
        )
    return metrics[metric_name]


def run(cfg: DictConfig) -> float | None:
    """Hydra task: user mistakes become one-line errors and exit code 2, not tracebacks; in a
    multirun a failing job is recorded and scores NaN, and the sweep goes on (sweep_jobs.py)."""
    if in_multirun():
        output_dir = Path(cfg.paths.output_dir)
        return run_recorded("gan-train", train_and_score, cfg, output_dir, float("nan"))
    return run_cli("gan-train", train_and_score, cfg)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def hydra_main(cfg: DictConfig) -> Any:
    return run(cfg)


def main() -> Any:
    """The ``gan-train`` command: Hydra's composition errors, too, are one line and exit code 2;
    a multirun in which any job failed runs every job, then exits with code 1."""
    result = run_hydra_entry("gan-train", hydra_main, CONFIG_PATH)
    outcome = take_sweep_outcome()
    if outcome is not None and outcome.failed_jobs:
        print(
            f"gan-train: {len(outcome.failed_jobs)} of {outcome.n_jobs} jobs failed "
            f"({', '.join(outcome.failed_jobs)}); their reasons are in {outcome.summary_path}",
            file=sys.stderr,
        )
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
