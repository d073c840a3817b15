"""Store the resolved run config in every checkpoint, so eval/sample can rebuild the networks."""

from __future__ import annotations

from typing import Any

import lightning as L


class RunConfigInCheckpoint(L.Callback):
    """Adds ``checkpoint["run_config"]``: plain dicts and scalars only, so ``weights_only`` loading works."""

    def __init__(self, run_config: dict[str, Any]) -> None:
        self.run_config = run_config

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["run_config"] = self.run_config
