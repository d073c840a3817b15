"""Training-health monitor: the silent failures a NaN check never sees.

A GAN usually fails quietly: D wins (its loss near 0, D(x) - D(G(z)) saturated) and G collapses
onto a few outputs, while every number stays finite. Three signals, logged under ``health/``:

- ``d_overpowering``: over a full window of batches, D's mean loss is below ``d_loss_floor``
  (losses bounded below by 0) or, for losses whose D outputs a probability, the mean
  D(x) - D(G(z)) is above ``score_gap_ceiling``;
- ``diversity_loss``: every ``diversity_every_n_steps`` generator steps, the mean pairwise distance
  of G's images from the fixed noise, relative to that of a real batch, falls below
  ``diversity_ratio_floor`` (1 = as varied as real data, 0 = one image repeated), or too many
  pairs are near-duplicates; judged from ``diversity_start_step`` on (an untrained G is uniform);
- ``loss_explosion``: a loss exceeds ``explosion_factor`` times its median magnitude over the window.

Each signal warns once in the console with the numbers seen, then the policy applies:
``continue`` (warn and log only), ``stop`` or ``rollback`` (see recovery.py).

Every batch's losses and D scores enter the window, but they stay on the device until the
batches the loggers write (or a diversity check, or the end of training): then all of them are
read in one transfer and judged in order, so watching costs no host sync per step.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from torch import Tensor

from gan_lab.errors import ConfigError
from gan_lab.lightning_internals import logger_writes
from gan_lab.training.health_signals import HealthSignals, diversity_ratio, near_duplicate_fraction
from gan_lab.training.recovery import Snapshot, TrainingStopped, check_policy, roll_back
from gan_lab.training.step_stats import StepStats, latest_scalar, write_scalars

log = logging.getLogger(__name__)

POLICIES = ("continue", "stop", "rollback")
WATCHED = ("loss/d", "loss/g", "D(x)", "D(G(z))")


class HealthMonitor(L.Callback):
    def __init__(
        self,
        policy: str = "continue",
        window: int = 200,
        d_loss_floor: float = 0.01,
        score_gap_ceiling: float = 0.98,
        diversity_every_n_steps: int = 100,
        diversity_ratio_floor: float = 0.1,
        duplicate_fraction_ceiling: float = 0.05,
        diversity_start_step: int = 1000,
        explosion_factor: float = 50.0,
        lr_factor: float = 0.5,
        max_rollbacks: int = 3,
    ) -> None:
        check_policy("callbacks.health_monitor.policy", policy, POLICIES)
        for key, value in (
            ("window", window),
            ("diversity_every_n_steps", diversity_every_n_steps),
        ):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"callbacks.health_monitor.{key}", value, "must be an integer >= 1"
                )
        self.policy, self.window = policy, window
        self.d_loss_floor, self.score_gap_ceiling = d_loss_floor, score_gap_ceiling
        self.diversity_every_n_steps, self.diversity_ratio_floor = (
            diversity_every_n_steps,
            diversity_ratio_floor,
        )
        self.duplicate_fraction_ceiling = duplicate_fraction_ceiling
        self.diversity_start_step = diversity_start_step
        self._prev_g_step = -1
        self.explosion_factor, self.lr_factor, self.max_rollbacks = (
            explosion_factor,
            lr_factor,
            max_rollbacks,
        )
        self.signals: HealthSignals | None = None
        self.warned: set[str] = set()
        self.alert_counts: dict[str, int] = {}
        self.rollbacks = 0
        self._last_diversity_step = -1
        self._snapshot: Snapshot | None = None
        # batches not yet judged: (keys present, their values on the device)
        self._pending: list[tuple[tuple[str, ...], Tensor]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = getattr(pl_module, "loss", None)
        self.signals = HealthSignals(
            self.window,
            self.d_loss_floor,
            self.score_gap_ceiling,
            self.explosion_factor,
            loss_bounded_below=bool(getattr(loss, "bounded_below", False)),
            scores_are_probabilities=bool(getattr(loss, "outputs_probability", False)),
        )
        if self.policy == "rollback":
            self._snapshot = Snapshot(trainer, pl_module)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        assert self.signals is not None
        g_step_now = trainer.global_step != self._prev_g_step
        self._prev_g_step = trainer.global_step
        self._record(trainer, pl_module, g_step_now)
        step = trainer.global_step
        diversity_due = (
            step > 0
            and step % self.diversity_every_n_steps == 0
            and step != self._last_diversity_step
        )
        if not (diversity_due or logger_writes(trainer)):
            return
        alerts = self._judge_pending()
        metrics = self.signals.summary()
        if diversity_due:
            self._last_diversity_step = step
            ratio, duplicates = self.measure_diversity(pl_module, batch[0])
            metrics["health/diversity_ratio"], metrics["health/near_duplicate_pairs"] = (
                ratio,
                duplicates,
            )
            judged = step >= self.diversity_start_step  # an untrained G is uniform, not collapsed
            if judged and (
                ratio < self.diversity_ratio_floor or duplicates > self.duplicate_fraction_ceiling
            ):
                alerts["diversity_loss"] = (
                    f"images from the fixed noise are {ratio:.3f}x as varied as a real batch "
                    f"(floor {self.diversity_ratio_floor}) and {duplicates:.1%} of their pairs are "
                    f"near-duplicates (ceiling {self.duplicate_fraction_ceiling:.0%}): G is collapsing onto few outputs"
                )
                self.alert_counts["diversity_loss"] = self.alert_counts.get("diversity_loss", 0) + 1
        metrics.update(
            {
                f"health/alerts_{name}": float(self.alert_counts.get(name, 0))
                for name in ("d_overpowering", "diversity_loss", "loss_explosion")
            }
        )
        write_scalars(trainer, metrics)
        if alerts:
            self._act(trainer, pl_module, alerts)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        alerts = self._judge_pending()  # the batches after the last logged one
        if alerts:
            self._act(trainer, pl_module, alerts)

    def _record(self, trainer: L.Trainer, pl_module: Any, g_step_now: bool) -> None:
        """Keep this batch's scalars for the next read; loss/g only on batches with a G step."""
        keys = tuple(k for k in WATCHED if g_step_now or k != "loss/g")
        stats = getattr(pl_module, "step_stats", None)
        if isinstance(stats, StepStats):
            keys = tuple(k for k in keys if k in stats)
            values = stats.stacked(keys) if keys else torch.zeros(0)
        else:  # another module: its logged values, read now
            found = {k: latest_scalar(trainer, pl_module, k) for k in keys}
            keys = tuple(k for k, v in found.items() if v is not None)
            values = torch.tensor([found[k] for k in keys], dtype=torch.float32)
        self._pending.append((keys, values))

    def _judge_pending(self) -> dict[str, str]:
        """Feed every recorded batch to the signals in order (one transfer); the alerts they raised."""
        assert self.signals is not None
        if not self._pending:
            return {}
        pending, self._pending = self._pending, []
        flat = torch.cat([values for _, values in pending]).tolist()
        alerts: dict[str, str] = {}
        offset = 0
        for keys, _ in pending:
            seen = dict(zip(keys, flat[offset : offset + len(keys)], strict=True))
            offset += len(keys)
            fired = self.signals.add(*(seen.get(k) for k in WATCHED))
            for name in fired:
                self.alert_counts[name] = self.alert_counts.get(name, 0) + 1
            alerts.update(fired)
        return alerts

    @torch.no_grad()
    def measure_diversity(self, pl_module: Any, real: Tensor) -> tuple[float, float]:
        """(diversity ratio, near-duplicate share) of the *training* generator on the fixed noise.

        The training generator, not the EMA: the average lags behind a collapse.
        """
        n = min(len(pl_module.fixed_z), len(real))
        fake = pl_module.generate(pl_module.fixed_z[:n], pl_module.fixed_y[:n], use_ema=False)
        return diversity_ratio(fake, real[:n]), near_duplicate_fraction(fake, real[:n])

    def _act(
        self, trainer: L.Trainer, pl_module: L.LightningModule, alerts: dict[str, str]
    ) -> None:
        seen = "; ".join(f"{name}: {what}" for name, what in alerts.items())
        where = f"at generator step {trainer.global_step}"
        for name, what in alerts.items():
            if name not in self.warned:
                self.warned.add(name)
                log.warning(
                    "training health: %s: %s %s (policy=%s; warned once)",
                    name,
                    what,
                    where,
                    self.policy,
                )
        if self.policy == "stop":
            raise TrainingStopped(
                f"training unhealthy {where}: {seen} (callbacks.health_monitor.policy=stop); "
                f"try lowering D's learning rate, model.n_critic, a regularizer, or another loss"
            )
        if self.policy == "rollback":
            if self.rollbacks >= self.max_rollbacks:
                raise TrainingStopped(
                    f"training unhealthy again {where} after {self.rollbacks} rollbacks: {seen}"
                )
            source = roll_back(trainer, pl_module, self._snapshot, self.lr_factor)
            self.rollbacks += 1
            assert self.signals is not None
            self.signals.reset()
            log.warning(
                "training health: rolled back to %s, learning rates x%g", source, self.lr_factor
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "alert_counts": dict(self.alert_counts),
            "rollbacks": self.rollbacks,
            "warned": sorted(self.warned),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.alert_counts = {str(k): int(v) for k, v in state_dict.get("alert_counts", {}).items()}
        self.rollbacks = int(state_dict.get("rollbacks", 0))
        self.warned = set(state_dict.get("warned", []))
