"""Per-step time of the two DDP strategies on 2 gloo processes: bench_throughput.py --ddp STEPS.

Each round fits STEPS generator steps once with Lightning's DDPStrategy (one wrapper around the
whole LightningModule, ``find_unused_parameters=True``, today's ``trainer=ddp``) and once with
gan-lab's per-network strategy (``trainer=ddp_gan``), alternating which goes first, in forked
processes (1 torch thread each) without callbacks. Rank 0 times every step; the first quarter is
dropped as warm-up and the median of the rest is reported, with the per-round ratio.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L

import classic_loop

STRATEGIES = {
    "lightning_ddp": (),
    "per_network_ddp": (
        "trainer.strategy._target_=gan_lab.training.ddp_per_network.PerNetworkDDPStrategy",
        "trainer.strategy.find_unused_parameters=false",
    ),
}


class StepTimer(L.Callback):
    """Rank 0 writes its step durations (seconds) to ``path`` when training ends."""

    def __init__(self, path: Path) -> None:
        self.path, self.durations, self.last = path, [], 0.0

    def on_train_batch_start(self, *args: Any) -> None:
        self.last = time.perf_counter()

    def on_train_batch_end(self, *args: Any) -> None:
        self.durations.append(time.perf_counter() - self.last)

    def on_train_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_rank == 0:
            self.path.write_text(json.dumps(self.durations))


def step_times(setup: classic_loop.Setup, strategy: str, steps: int) -> list[float]:
    import hydra
    import torch

    from gan_lab.lightning_internals import fit_as_gan_train
    from gan_lab.trainer_args import trainer_config

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as workdir:
        cfg = classic_loop.compose(
            setup,
            "trainer=ddp_cpu",
            "trainer.strategy.start_method=fork",
            "callbacks=none",
            "+trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            f"trainer.max_steps={steps}",
            *STRATEGIES[strategy],
            output_dir=workdir,
        )
        L.seed_everything(0, verbose=False)
        timer = StepTimer(Path(workdir) / "steps.json")
        trainer = hydra.utils.instantiate(trainer_config(cfg), callbacks=[timer], logger=False)
        fit_as_gan_train(
            trainer, hydra.utils.instantiate(cfg.model), hydra.utils.instantiate(cfg.data)
        )
        durations = json.loads(timer.path.read_text())
    return durations[len(durations) // 4 :]


def compare(setups: list[str], steps: int, rounds: int, json_path: Path | None) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for name in setups:
        setup = classic_loop.SETUPS[name]
        medians: dict[str, list[float]] = {s: [] for s in STRATEGIES}
        for r in range(rounds):
            for strategy in STRATEGIES if r % 2 == 0 else reversed(list(STRATEGIES)):
                medians[strategy].append(statistics.median(step_times(setup, strategy, steps)))
        ratios = [
            p / d for p, d in zip(medians["per_network_ddp"], medians["lightning_ddp"], strict=True)
        ]
        report[name] = {"median_step_s": medians, "per_network_over_lightning": ratios}
        print(
            f"[{name}] 2 gloo processes, median ms/step per round: "
            + "; ".join(f"{s} {[round(1e3 * m, 2) for m in ms]}" for s, ms in medians.items())
            + f"; per_network / lightning: median {statistics.median(ratios):.3f} "
            f"(rounds {[round(x, 3) for x in ratios]})",
            flush=True,
        )
    if json_path:
        json_path.write_text(json.dumps(report, indent=1))
    return report
