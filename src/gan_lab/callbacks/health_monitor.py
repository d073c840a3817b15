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
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from typing import Any

import lightning as L
import torch
from torch import Tensor

from gan_lab.errors import ConfigError
from gan_lab.lightning_internals import logger_writes
from gan_lab.training.recovery import Snapshot, TrainingStopped, check_policy, roll_back
from gan_lab.training.step_stats import latest_scalar

log = logging.getLogger(__name__)

POLICIES = ("continue", "stop", "rollback")


def mean_pairwise_distance(images: Tensor) -> float:
    """Mean L2 distance between distinct images, per sqrt(pixel): 0 means all images are equal."""
    flat = images.detach().float().flatten(1)
    n = flat.shape[0]
    if n < 2:
        return 0.0
    distances = torch.cdist(flat, flat)
    return float(distances.sum() / (n * (n - 1)) / flat.shape[1] ** 0.5)


def diversity_ratio(fake: Tensor, real: Tensor) -> float:
    """Diversity of generated images relative to real ones (about 1 healthy, near 0 collapsed)."""
    real_spread = mean_pairwise_distance(real)
    return mean_pairwise_distance(fake) / real_spread if real_spread > 0 else float("nan")


def near_duplicate_fraction(fake: Tensor, real: Tensor, closeness: float = 0.1) -> float:
    """Share of pairs of generated images closer than ``closeness`` x the real mean distance.

    Catches partial collapse onto a handful of outputs, which the mean distance alone misses:
    with k repeated patterns about 1/k of all pairs are near-duplicates; real data has almost none.
    """
    flat = fake.detach().float().flatten(1)
    n = flat.shape[0]
    if n < 2:
        return 0.0
    threshold = closeness * mean_pairwise_distance(real) * flat.shape[1] ** 0.5
    close = (torch.cdist(flat, flat) < threshold).sum() - n  # minus the diagonal
    return float(close) / (n * (n - 1))


class HealthSignals:
    """The window of recent scalars and the verdicts drawn from it; free of Lightning."""

    def __init__(
        self,
        window: int,
        d_loss_floor: float,
        score_gap_ceiling: float,
        explosion_factor: float,
        loss_bounded_below: bool,
        scores_are_probabilities: bool,
    ) -> None:
        self.window = window
        self.d_loss_floor, self.score_gap_ceiling = d_loss_floor, score_gap_ceiling
        self.explosion_factor = explosion_factor
        self.loss_bounded_below, self.scores_are_probabilities = (
            loss_bounded_below,
            scores_are_probabilities,
        )
        self.d_loss: deque[float] = deque(maxlen=window)
        self.g_loss: deque[float] = deque(maxlen=window)
        self.gap: deque[float] = deque(maxlen=window)

    def add(
        self,
        d_loss: float | None,
        g_loss: float | None,
        real_score: float | None,
        fake_score: float | None,
    ) -> dict[str, str]:
        """Record one batch; returns ``{signal: what was seen}`` for every signal firing now."""
        alerts: dict[str, str] = {}
        for name, value, history in (
            ("loss/d", d_loss, self.d_loss),
            ("loss/g", g_loss, self.g_loss),
        ):
            if value is None:
                continue
            if len(history) == self.window:
                typical = statistics.median(abs(v) for v in history)
                if abs(value) > self.explosion_factor * max(typical, 1e-3):
                    alerts["loss_explosion"] = (
                        f"{name}={value:.4g} is {abs(value) / max(typical, 1e-3):.0f}x its median magnitude "
                        f"{typical:.3g} over the last {self.window} batches"
                    )
            history.append(value)
        if real_score is not None and fake_score is not None:
            self.gap.append(real_score - fake_score)
        if len(self.d_loss) == self.window:
            mean_d = statistics.fmean(self.d_loss)
            if self.loss_bounded_below and mean_d < self.d_loss_floor:
                alerts["d_overpowering"] = (
                    f"mean D loss {mean_d:.4g} < {self.d_loss_floor} over the last {self.window} batches"
                )
        if self.scores_are_probabilities and len(self.gap) == self.window:
            mean_gap = statistics.fmean(self.gap)
            if mean_gap > self.score_gap_ceiling:
                alerts.setdefault(
                    "d_overpowering",
                    f"mean D(x) - D(G(z)) {mean_gap:.4f} > {self.score_gap_ceiling} over the last {self.window} batches",
                )
        return alerts

    def reset(self) -> None:
        for history in (self.d_loss, self.g_loss, self.gap):
            history.clear()

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.d_loss:
            out["health/d_loss_mean"] = statistics.fmean(self.d_loss)
        if self.gap:
            out["health/score_gap_mean"] = statistics.fmean(self.gap)
        return out


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
        alerts = self.signals.add(
            latest_scalar(trainer, pl_module, "loss/d"),
            latest_scalar(trainer, pl_module, "loss/g") if g_step_now else None,
            latest_scalar(trainer, pl_module, "D(x)"),
            latest_scalar(trainer, pl_module, "D(G(z))"),
        )
        metrics = self.signals.summary()
        step = trainer.global_step
        if (
            step > 0
            and step % self.diversity_every_n_steps == 0
            and step != self._last_diversity_step
        ):
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
        for name in alerts:
            self.alert_counts[name] = self.alert_counts.get(name, 0) + 1
        metrics.update(
            {
                f"health/alerts_{name}": float(self.alert_counts.get(name, 0))
                for name in ("d_overpowering", "diversity_loss", "loss_explosion")
            }
        )
        if logger_writes(trainer) or "health/diversity_ratio" in metrics:
            pl_module.log_dict(metrics)
        if alerts:
            self._act(trainer, pl_module, alerts)

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
