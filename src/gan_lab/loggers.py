"""The optional loggers (MLflow, W&B) and images for every logger that takes them.

``configs/logger/{mlflow,wandb}.yaml`` build their loggers here so that the defaults suit a
research machine: MLflow writes a local store inside the run directory unless a tracking URI is
given; W&B runs offline (nothing leaves the machine; ``wandb sync`` uploads later) unless the user
has configured an API key or ``WANDB_MODE``. A missing package is one line naming the install.
"""

from __future__ import annotations

import importlib.util
import netrc
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from torch import Tensor

from gan_lab.errors import UserError

WANDB_HOST = "api.wandb.ai"


def require(package: str, logger: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise UserError(
            f"logger={logger} needs the {package} package: pip install 'gan-lab[loggers]' "
            f"(or pip install {package}), or choose another logger (logger=tensorboard)"
        )


def run_label(save_dir: str | Path) -> str:
    """``<sweep or runs>/<run>``: where the run directory is, readable in a run list."""
    path = Path(save_dir).resolve()
    return f"{path.parent.name}/{path.name}"


# ---------------------------------------------------------------------------------- MLflow
def mlflow_key(key: str) -> str:
    """MLflow allows letters, digits and ``_-./ `` in names: ``D(G(z))`` -> ``D_G_z``."""
    return re.sub(r"[^A-Za-z0-9_/. -]+", "_", key).strip("_")


class GANMLFlowLogger(MLFlowLogger):
    """Lightning's MLflow logger with the GAN's scalar names made valid (it would strip them)."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        super().log_metrics({mlflow_key(k): v for k, v in metrics.items()}, step)


def mlflow_logger(
    save_dir: str,
    experiment_name: str = "gan_lab",
    run_name: str | None = None,
    tracking_uri: str | None = None,
    tags: Sequence[str] = (),
    **kwargs: Any,
) -> MLFlowLogger:
    """An MLflow run; without ``tracking_uri`` a file store at ``save_dir`` (inside the run dir)."""
    require("mlflow", "mlflow")
    if not tracking_uri:
        # MLflow 3 keeps file stores in maintenance mode and asks for this opt-in; a database
        # store would cost ~30 s of schema migrations per run directory
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        tracking_uri = Path(save_dir).resolve().as_uri()
    return GANMLFlowLogger(
        experiment_name=experiment_name,
        run_name=run_name or run_label(Path(save_dir).parent),
        tracking_uri=tracking_uri,
        tags={tag: "true" for tag in tags},
        **kwargs,
    )


# ---------------------------------------------------------------------------------- W&B
def wandb_key_configured() -> bool:
    """An API key in ``WANDB_API_KEY`` or in ``~/.netrc`` (where ``wandb login`` puts it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", f"https://{WANDB_HOST}")).hostname
    try:
        return bool(host and netrc.netrc().authenticators(host))
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_offline(offline: bool | None) -> bool:
    """Explicit choice first, then ``WANDB_MODE``, then: online only with a configured key."""
    if offline is not None:
        return offline
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode in ("offline", "dryrun", "disabled")
    return not wandb_key_configured()


def wandb_logger(
    save_dir: str,
    project: str = "gan-lab",
    entity: str | None = None,
    name: str | None = None,
    tags: Sequence[str] = (),
    offline: bool | None = None,
    **kwargs: Any,
) -> WandbLogger:
    """A W&B run under ``save_dir/wandb``; offline unless a key is configured (see module doc)."""
    require("wandb", "wandb")
    offline = wandb_offline(offline)
    if offline:  # nothing may try the network: no crash reports either
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        entity=entity,
        name=name or run_label(save_dir),
        tags=list(tags),
        offline=offline,
        **kwargs,
    )


def finish_runs(loggers: Sequence[Logger]) -> None:
    """End the W&B run: the next run of a Hydra multirun (same process) must not log into it."""
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()


# ---------------------------------------------------------------------------------- TensorBoard
def event_file_writer(logger: TensorBoardLogger) -> Any:
    """The open event file of a TensorBoard logger, for records Lightning does not write
    (HPARAMS sessions, the restart marker of a resumed run); torch's and tensorboardX's writer."""
    writer = logger.experiment
    return writer._get_file_writer() if hasattr(writer, "_get_file_writer") else writer.file_writer


# ---------------------------------------------------------------------------------- images
def log_image(logger: Logger, key: str, image: Tensor, step: int) -> bool:
    """Send a (C, H, W) image in [0, 1] to ``logger`` if it takes images; False if it does not."""
    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(key, image, global_step=step)
    elif isinstance(logger, WandbLogger):
        logger.log_image(key, [image], step=step)
    elif isinstance(logger, MLFlowLogger):
        pixels = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        logger.experiment.log_image(logger.run_id, pixels, key=mlflow_key(key), step=step)
    else:
        return False
    return True
